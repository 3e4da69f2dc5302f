"""Small areas and sites on English geography.

The bundled tables (built by ``data/build/build_data.py``, described in
``data/SOURCES.md``) hold every English LSOA 2011 with its population, IMD 2019
deprivation, rural flag, sub-ICB and ICB, and the mental health hospital sites
of the NHS Choices 2014 hospital list. This module reads them, resolves ICB
names, aggregates LSOAs to MSOAs and reads the areas and sites that users
upload.

Conventions
-----------
- Every table is in British National Grid (``BNG``, EPSG:27700, metres);
  ``to_wgs84`` converts a copy for web maps.
- **Area tables** (``load_lsoas``, ``load_footprint``, ``aggregate_to_msoa``,
  ``load_areas``) share one shape so downstream code handles bundled and
  uploaded areas identically: the index is named ``area_code`` (``AREA_CODE``)
  and the columns ``area_name``, ``pop_total``, ``imd_decile``,
  ``imd_quintile``, ``rural``, ``area_km2``, ``centroid_x``, ``centroid_y`` and
  ``geometry`` are always present. LSOA tables keep their native code as the
  column ``lsoa11cd`` (and all other LSOA columns); MSOA tables keep
  ``msoa11cd``. The index and a column never share a name.
- **Site tables** (``load_mh_sites``, ``load_sites``) are indexed by ``site_id``
  and carry ``name``, ``x``, ``y`` (metres) and a point ``geometry``.
- IMD deciles and quintiles count from 1 = most deprived.
- Problems in an uploaded file are all collected and raised together as one
  :class:`~pathways.errors.InputError`; each names the file, the row and the
  field. Rows are counted as the user sees them: in a CSV the header is row 1,
  so the first data row is row 2; in a GeoJSON, GeoPackage or Shapefile row N
  is the N-th feature.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import logging
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyogrio
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError
from scipy.spatial import cKDTree

from pathways import uploads
from pathways._paths import data_dir
from pathways.errors import InputError, Problem
from pathways.scenario import MAX_UNITS

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- constants

BNG = "EPSG:27700"
WGS84 = "EPSG:4326"

LSOA_FILE = "lsoa.parquet"
MH_SITES_FILE = "mh_sites_2014.parquet"

#: Number of LSOAs (2011) in England.
N_ENGLISH_LSOAS = 32_844

# Area table: generic columns shared by bundled and uploaded areas.
AREA_CODE = "area_code"
AREA_NAME = "area_name"

# LSOA table columns.
LSOA11CD = "lsoa11cd"
LSOA11NM = "lsoa11nm"
LAD19CD = "lad19cd"
LAD19NM = "lad19nm"
MSOA11CD = "msoa11cd"
MSOA11NM = "msoa11nm"
SICBL_CD = "sicbl_cd"
SICBL_NM = "sicbl_nm"
ICB_CD = "icb_cd"
ICB_NM = "icb_nm"
ICB_SHORT = "icb_short"
POP_TOTAL = "pop_total"
POP_0_15 = "pop_0_15"
POP_16_59 = "pop_16_59"
POP_60_PLUS = "pop_60_plus"
IMD_RANK = "imd_rank"
IMD_DECILE = "imd_decile"
IMD_QUINTILE = "imd_quintile"
INCOME_DECILE = "income_decile"
EMPLOYMENT_DECILE = "employment_decile"
EDUCATION_DECILE = "education_decile"
HEALTH_DECILE = "health_decile"
CRIME_DECILE = "crime_decile"
HOUSING_DECILE = "housing_decile"
ENVIRONMENT_DECILE = "environment_decile"
RURAL = "rural"
RURAL_OA_SHARE = "rural_oa_share"
AREA_KM2 = "area_km2"
CENTROID_X = "centroid_x"
CENTROID_Y = "centroid_y"
GEOMETRY = "geometry"
N_LSOAS = "n_lsoas"

POP_AGE_COLUMNS = (POP_0_15, POP_16_59, POP_60_PLUS)
POP_COLUMNS = (POP_TOTAL, *POP_AGE_COLUMNS)
#: The seven IoD 2019 domain deciles, in the order of IoD File 2.
DOMAIN_DECILES = (
    INCOME_DECILE,
    EMPLOYMENT_DECILE,
    EDUCATION_DECILE,
    HEALTH_DECILE,
    CRIME_DECILE,
    HOUSING_DECILE,
    ENVIRONMENT_DECILE,
)
#: Columns of ``lsoa.parquet`` in file order.
LSOA_COLUMNS = (
    LSOA11CD,
    LSOA11NM,
    LAD19CD,
    LAD19NM,
    MSOA11CD,
    MSOA11NM,
    SICBL_CD,
    SICBL_NM,
    ICB_CD,
    ICB_NM,
    ICB_SHORT,
    *POP_COLUMNS,
    IMD_RANK,
    IMD_DECILE,
    *DOMAIN_DECILES,
    IMD_QUINTILE,
    RURAL,
    RURAL_OA_SHARE,
    AREA_KM2,
    CENTROID_X,
    CENTROID_Y,
    GEOMETRY,
)
#: Columns every area table has (besides the ``area_code`` index).
AREA_COLUMNS = (
    AREA_NAME,
    POP_TOTAL,
    IMD_DECILE,
    IMD_QUINTILE,
    RURAL,
    AREA_KM2,
    CENTROID_X,
    CENTROID_Y,
    GEOMETRY,
)

#: Highest LSOA rank in each IMD 2019 decile (1 = most deprived), from IoD2019 File 1.
IMD_DECILE_UPPER_RANKS = (3284, 6568, 9853, 13137, 16422, 19706, 22990, 26275, 29559, 32844)

# Site table columns.
SITE_ID = "site_id"
SITE_NAME = "name"
TRUST_CODE = "trust_code"
TRUST_NAME = "trust_name"
POSTCODE = "postcode"
X = "x"
Y = "y"
SERVICES = "services"
STATUS = "status"
MH_SITE_COLUMNS = (
    SITE_ID,
    SITE_NAME,
    TRUST_CODE,
    TRUST_NAME,
    POSTCODE,
    X,
    Y,
    LSOA11CD,
    ICB_CD,
    ICB_NM,
    GEOMETRY,
)

#: Service types a site may offer, and the capacity column of each.
SERVICE_TYPES = ("inpatient", "crisis_house", "mobile_team", "place_of_safety")
CAPACITY_COLUMNS = {
    "inpatient": "inpatient_beds",
    "crisis_house": "crisis_house_places",
    "mobile_team": "mobile_teams",
    "place_of_safety": "place_of_safety_suites",
}
SITE_STATUSES = ("existing", "candidate")
DEFAULT_SITE_STATUS = "existing"

#: Great Britain (with a margin) in EPSG:27700: xmin, ymin, xmax, ymax.
GB_BOUNDS_BNG = (-10_000.0, -10_000.0, 700_000.0, 1_250_000.0)
#: A point this close to a footprint (metres) counts as inside it: the bundled
#: boundaries are generalised and clipped to the coastline.
FOOTPRINT_TOLERANCE_M = 1_000.0
#: An uploaded polygon must have at least this share of its area in the footprint.
FOOTPRINT_MIN_OVERLAP = 0.5
#: Without a footprint, an uploaded area or site farther than this (metres) from the
#: centre of every English LSOA is taken to lie outside England (rural LSOAs are large,
#: so the margin is wide: it catches Scotland, Wales and wrong coordinates, not a
#: point a few miles over the border).
ENGLAND_TOLERANCE_M = 10_000.0
#: More people than this in one uploaded area is taken as a mistake (England has 57 million).
MAX_AREA_POPULATION = 10_000_000

SUPPORTED_FORMATS = {
    ".csv": "CSV",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GeoPackage",
    ".zip": "zipped Shapefile",
    ".shp": "Shapefile",
}
_TRUE = {"true", "t", "yes", "y", "1", "rural"}
_FALSE = {"false", "f", "no", "n", "0", "urban"}
_COORDINATE_PAIRS = (("x", "y", BNG), ("lon", "lat", WGS84), ("longitude", "latitude", WGS84))


# --------------------------------------------------------------------------- helpers


def icb_short_name(name: str) -> str:
    """Readable ICB name: "NHS Sussex Integrated Care Board" -> "Sussex"."""
    short = re.sub(r"^NHS\s+", "", str(name).strip())
    return re.sub(r"\s+(Integrated Care Board|ICB)$", "", short).strip()


def imd_decile_from_rank(rank: np.ndarray | Sequence[float] | float) -> np.ndarray:
    """IMD 2019 decile (1 = most deprived) of an LSOA-equivalent rank.

    Uses the national LSOA cut-points ``IMD_DECILE_UPPER_RANKS``, so a
    population-weighted mean rank of several LSOAs maps to the decile an LSOA
    of that rank would have.
    """
    r = np.rint(np.asarray(rank, dtype=float))
    return np.searchsorted(np.asarray(IMD_DECILE_UPPER_RANKS), r, side="left") + 1


def quintile_from_decile(decile: np.ndarray | Sequence[int] | int) -> np.ndarray:
    """IMD quintile from decile: deciles 1-2 -> 1 (most deprived), ..., 9-10 -> 5."""
    return (np.asarray(decile, dtype=int) + 1) // 2


def _representative_points(geoms: np.ndarray) -> np.ndarray:
    """Centroid, or a point on the surface where the centroid falls outside."""
    cent = shapely.centroid(geoms)
    inside = shapely.intersects(geoms, cent)
    return np.where(inside, cent, shapely.point_on_surface(geoms))


def to_wgs84(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Copy of ``gdf`` in WGS84 longitude/latitude (EPSG:4326) for web maps."""
    if gdf.crs is None:
        raise InputError(Problem("table", None, GEOMETRY, "has no coordinate reference system"))
    return gdf.to_crs(WGS84)


def clear_cache() -> None:
    """Forget cached reads of the bundled tables (after rebuilding them)."""
    _read_lsoas_cached.cache_clear()
    _icb_table_cached.cache_clear()
    _read_sites_cached.cache_clear()
    _icb_ods_codes_cached.cache_clear()


# --------------------------------------------------------------------------- bundled tables


def _lsoa_path() -> Path:
    return data_dir() / LSOA_FILE


def _sites_path() -> Path:
    return data_dir() / MH_SITES_FILE


def _as_area_table(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Index an LSOA table by ``area_code`` and add ``area_name``."""
    gdf = gdf.set_index(pd.Index(gdf[LSOA11CD].to_numpy(), name=AREA_CODE))
    if LSOA11NM in gdf.columns:
        gdf.insert(0, AREA_NAME, gdf[LSOA11NM].to_numpy())
    return gdf


@functools.lru_cache(maxsize=4)
def _read_lsoas_cached(path: str, columns: tuple[str, ...] | None) -> gpd.GeoDataFrame:
    return _as_area_table(gpd.read_parquet(path, columns=list(columns) if columns else None))


def _check_columns(columns: Iterable[str] | None) -> tuple[str, ...] | None:
    if columns is None:
        return None
    wanted = list(dict.fromkeys([LSOA11CD, *columns, GEOMETRY]))
    unknown = [c for c in wanted if c not in LSOA_COLUMNS]
    if unknown:
        raise InputError(
            Problem("columns argument", None, ", ".join(unknown), "unknown LSOA column(s)")
        )
    return tuple(wanted)


def load_lsoas(columns: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    """Every English LSOA 2011 (32,844 rows) in EPSG:27700.

    Parameters
    ----------
    columns
        LSOA columns to read (``lsoa11cd`` and ``geometry`` are always read);
        all columns when ``None``.

    Returns
    -------
    GeoDataFrame indexed by ``area_code`` (= ``lsoa11cd``). A fresh copy: the
    cached table cannot be changed through it.
    """
    return _read_lsoas_cached(str(_lsoa_path()), _check_columns(columns)).copy()


@functools.lru_cache(maxsize=4)
def _icb_table_cached(path: str) -> pd.DataFrame:
    table = pq.read_table(path, columns=[ICB_CD, ICB_NM, ICB_SHORT, POP_TOTAL]).to_pandas()
    out = (
        table.groupby([ICB_CD, ICB_NM, ICB_SHORT], sort=True)[POP_TOTAL]
        .agg(["size", "sum"])
        .rename(columns={"size": N_LSOAS, "sum": POP_TOTAL})
        .reset_index()
    )
    return out


def list_icbs() -> pd.DataFrame:
    """The 42 ICBs: ``icb_cd``, ``icb_nm``, ``icb_short``, ``n_lsoas``, ``pop_total``."""
    return _icb_table_cached(str(_lsoa_path())).copy()


def _norm(text: str) -> str:
    return " ".join(str(text).replace(",", " ").split()).casefold()


def resolve_icb(code_or_name: str) -> str:
    """ICB code (E54...) from a code, short name or official name.

    Matching ignores case, extra spaces and commas: ``"E54000053"``,
    ``"sussex"`` and ``"NHS Sussex Integrated Care Board"`` all give
    ``"E54000053"``.

    Raises
    ------
    InputError
        For an unknown ICB; the message suggests close matches.
    """
    icbs = _icb_table_cached(str(_lsoa_path()))
    key = _norm(code_or_name)
    lookup: dict[str, str] = {}
    for code, name, short in icbs[[ICB_CD, ICB_NM, ICB_SHORT]].itertuples(index=False):
        for alias in (code, name, short, f"NHS {short}", f"NHS {short} ICB", f"{short} ICB"):
            lookup[_norm(alias)] = code
    lookup.update({_norm(ods): code for ods, code in _ods_codes().items()})
    if key in lookup:
        return lookup[key]
    shorts = dict(zip(icbs[ICB_SHORT].map(_norm), icbs[ICB_SHORT], strict=True))
    # every name containing the text first ("London": all five), then names that look alike
    close = [s for s in shorts if key and key in s]
    if not close:
        close = difflib.get_close_matches(_norm(icb_short_name(key)), list(shorts), n=3, cutoff=0.6)
    if len(close) == 1:
        hint = f"did you mean '{shorts[close[0]]}'?"
    elif close:
        hint = "it could be any of " + ", ".join(f"'{shorts[s]}'" for s in sorted(close)[:8])
        hint += f" (and {len(close) - 8} more)" if len(close) > 8 else ""
        hint += "; give more of the name"
    else:
        hint = (
            "give an ICB code (E54... or the ODS code Q..) or a name such as 'Kent and Medway' "
            "(the 42 names: pathways scenario list)"
        )
    raise InputError(Problem("icb", None, ICB_CD, f"unknown ICB '{code_or_name}': {hint}"))


@functools.lru_cache(maxsize=1)
def _icb_ods_codes_cached() -> dict[str, str]:
    path = data_dir() / "icb_codes.parquet"
    if not path.exists():
        return {}
    table = pd.read_parquet(path, columns=["icb_cd", "icb_ods_cd"])
    return dict(zip(table["icb_cd"], table["icb_ods_cd"], strict=True))


def icb_ods_codes() -> dict[str, str]:
    """ONS ICB codes (E54...) -> ODS codes (Q..), from ``data/icb_codes.parquet``."""
    return dict(_icb_ods_codes_cached())


def _ods_codes() -> dict[str, str]:
    """ODS ICB codes (Q..) -> ONS codes (E54...)."""
    return {ods: code for code, ods in _icb_ods_codes_cached().items()}


def load_footprint(code_or_name: str, columns: Iterable[str] | None = None) -> gpd.GeoDataFrame:
    """The LSOAs of one ICB in EPSG:27700.

    Reads only that ICB's rows from the bundled GeoParquet (a pyarrow filter on
    ``icb_cd``), so it neither loads nor caches all of England.

    Parameters
    ----------
    code_or_name
        ICB code, short name or official name (see :func:`resolve_icb`).
    columns
        LSOA columns to read; all when ``None``.

    Returns
    -------
    GeoDataFrame indexed by ``area_code`` (= ``lsoa11cd``), sorted by code.
    """
    code = resolve_icb(code_or_name)
    wanted = _check_columns(columns)
    gdf = gpd.read_parquet(
        _lsoa_path(),
        columns=list(wanted) if wanted else None,
        filters=[(ICB_CD, "=", code)],
    )
    return _as_area_table(gdf).sort_index()


@functools.lru_cache(maxsize=4)
def _read_sites_cached(path: str) -> gpd.GeoDataFrame:
    return gpd.read_parquet(path).set_index(SITE_ID)


def load_mh_sites(icb: str | None = None) -> gpd.GeoDataFrame:
    """Mental health hospital sites of the NHS Choices 2014 list (England).

    Parameters
    ----------
    icb
        ICB code or name to keep only its sites; all English sites when ``None``.

    Returns
    -------
    GeoDataFrame indexed by ``site_id`` (ODS code) with ``name``, ``trust_code``,
    ``trust_name``, ``postcode``, ``x``, ``y``, ``lsoa11cd``, ``icb_cd``,
    ``icb_nm`` and a point geometry in EPSG:27700.
    """
    sites = _read_sites_cached(str(_sites_path()))
    if icb is not None:
        sites = sites[sites[ICB_CD] == resolve_icb(icb)]
    return sites.copy()


# --------------------------------------------------------------------------- aggregation


def aggregate_to_msoa(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Aggregate LSOAs (e.g. a footprint) to MSOA 2011.

    Populations are summed; the IMD rank is the population-weighted mean of
    the LSOA ranks and the decile is that rank's decile on the national LSOA
    cut-points (:func:`imd_decile_from_rank`); an MSOA is rural when most of
    its population lives in rural LSOAs; geometries are dissolved. Only the
    LSOAs given are aggregated, so an MSOA cut by a footprint edge covers the
    part inside.

    Returns
    -------
    Area table indexed by ``area_code`` (= ``msoa11cd``) with ``msoa11cd``,
    ``area_name`` (= ``msoa11nm``), population columns, ``imd_rank``, ``imd_decile``,
    ``imd_quintile``, ``rural``, ``area_km2``, ``n_lsoas``, centroid, the ICB
    and LAD columns when present, and the dissolved geometry.
    """
    need = [MSOA11CD, POP_TOTAL, IMD_RANK, RURAL, GEOMETRY]
    missing = [c for c in need if c not in areas.columns]
    if missing:
        raise InputError(
            [
                Problem("areas", None, c, "column needed to aggregate to MSOA is missing")
                for c in missing
            ]
        )
    if areas.crs is None or CRS(areas.crs) != CRS(BNG):
        areas = areas.to_crs(BNG) if areas.crs is not None else areas.set_crs(BNG)
    df = pd.DataFrame(areas.drop(columns=GEOMETRY))
    pops = [c for c in POP_COLUMNS if c in df.columns]
    w = df[POP_TOTAL].astype(float)
    df["_w_rank"] = df[IMD_RANK] * w
    df["_rural_pop"] = w.where(df[RURAL].astype(bool), 0.0)
    df["_one"] = 1
    grouped = df.groupby(MSOA11CD, sort=True)
    out = grouped[pops].sum()
    wsum = grouped[POP_TOTAL].sum().astype(float)
    mean_rank = grouped[IMD_RANK].mean()
    out[IMD_RANK] = np.where(
        wsum > 0, grouped["_w_rank"].sum() / wsum.where(wsum > 0, 1), mean_rank
    )
    out[IMD_RANK] = out[IMD_RANK].round(1)
    out[IMD_DECILE] = imd_decile_from_rank(out[IMD_RANK].to_numpy())
    out[IMD_QUINTILE] = quintile_from_decile(out[IMD_DECILE].to_numpy())
    out[RURAL] = (grouped["_rural_pop"].sum() > 0.5 * wsum).to_numpy()
    out[N_LSOAS] = grouped["_one"].sum()
    if AREA_KM2 in df.columns:
        out[AREA_KM2] = grouped[AREA_KM2].sum().round(4)
    names = grouped[MSOA11NM].first() if MSOA11NM in df.columns else out.index.to_series()
    carry = [c for c in (LAD19CD, LAD19NM, ICB_CD, ICB_NM, ICB_SHORT) if c in df.columns]
    for c in carry:
        out[c] = grouped[c].agg(lambda s: s.mode().iloc[0])

    geoms = gpd.GeoSeries(areas.geometry.values, index=df[MSOA11CD].to_numpy())
    dissolved = geoms.groupby(level=0, sort=True).agg(lambda s: shapely.union_all(s.values))
    geom = shapely.set_precision(np.asarray(dissolved.reindex(out.index).values, dtype=object), 1.0)
    pts = _representative_points(geom)
    if AREA_KM2 not in out.columns:
        out[AREA_KM2] = np.round(shapely.area(geom) / 1e6, 4)
    out[CENTROID_X] = np.round(shapely.get_x(pts))
    out[CENTROID_Y] = np.round(shapely.get_y(pts))
    out.insert(0, AREA_NAME, names.reindex(out.index).to_numpy())
    out.insert(1, MSOA11NM, out[AREA_NAME].to_numpy())
    out.insert(0, MSOA11CD, out.index.to_numpy())
    out.index.name = AREA_CODE
    return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geom, index=out.index, crs=BNG))


# --------------------------------------------------------------------------- validation


def validate_areas(areas: gpd.GeoDataFrame, source: str = "areas") -> None:
    """Check an in-memory area table; raise one InputError listing every problem.

    Checks: index named ``area_code`` with unique codes, the ``AREA_COLUMNS``
    present, ``pop_total`` >= 0 and not missing, ``imd_decile`` in 1-10, CRS
    EPSG:27700, geometries present, non-empty and valid.
    """
    problems: list[Problem] = []
    if areas.index.name != AREA_CODE:
        problems.append(Problem(source, None, AREA_CODE, f"index must be named '{AREA_CODE}'"))
    missing = [c for c in AREA_COLUMNS if c not in areas.columns]
    problems += [Problem(source, None, c, "required column is missing") for c in missing]
    codes = areas.index.to_series()
    for pos in np.flatnonzero(codes.duplicated().to_numpy()):
        problems.append(
            Problem(source, int(pos) + 1, AREA_CODE, f"duplicate code '{codes.iloc[pos]}'")
        )
    if POP_TOTAL in areas.columns:
        pop = pd.to_numeric(areas[POP_TOTAL], errors="coerce")
        for pos in np.flatnonzero((pop.isna() | (pop < 0)).to_numpy()):
            problems.append(
                Problem(source, int(pos) + 1, POP_TOTAL, "must be a number >= 0, not missing")
            )
    if IMD_DECILE in areas.columns:
        dec = pd.to_numeric(areas[IMD_DECILE], errors="coerce")
        for pos in np.flatnonzero((~dec.between(1, 10)).to_numpy()):
            problems.append(Problem(source, int(pos) + 1, IMD_DECILE, "must be 1-10"))
    if not isinstance(areas, gpd.GeoDataFrame) or areas.crs is None:
        problems.append(Problem(source, None, GEOMETRY, "no coordinate reference system"))
    elif CRS(areas.crs) != CRS(BNG):
        problems.append(Problem(source, None, GEOMETRY, f"CRS must be {BNG}, not {areas.crs}"))
    if isinstance(areas, gpd.GeoDataFrame):
        geoms = areas.geometry.values
        bad = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        for pos in np.flatnonzero(bad):
            problems.append(Problem(source, int(pos) + 1, GEOMETRY, "geometry is empty or missing"))
        invalid = ~bad & ~shapely.is_valid(geoms)
        for pos in np.flatnonzero(invalid):
            reason = shapely.is_valid_reason(geoms[pos])
            problems.append(Problem(source, int(pos) + 1, GEOMETRY, f"invalid geometry ({reason})"))
    if problems:
        raise InputError(problems)


# --------------------------------------------------------------------------- uploads


@dataclass
class _Upload:
    """An uploaded table after reading: attributes, geometry in BNG, problems."""

    name: str
    kind: str
    table: pd.DataFrame
    rows: np.ndarray
    geometry: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    problems: list[Problem] = field(default_factory=list)

    def add(self, pos: int | None, column: str | None, message: str) -> None:
        row = None if pos is None else int(self.rows[pos])
        self.problems.append(Problem(self.name, row, column, message))

    def raise_problems(self) -> None:
        """Raise every problem found so far, file-level first, then by row."""
        if self.problems:
            ordered = sorted(self.problems, key=lambda p: (p.row or 0, p.field or ""))
            raise InputError(ordered)


def _fatal(name: str, message: str, column: str | None = None) -> InputError:
    return InputError(Problem(name, None, column, message))


def _read_upload(path: str | Path, what: str) -> _Upload:
    """Read a CSV / GeoJSON / GeoPackage / Shapefile; raise for unusable files."""
    path = Path(path)
    name = path.name
    ext = path.suffix.lower()
    if ext not in SUPPORTED_FORMATS:
        formats = "GeoJSON (.geojson), GeoPackage (.gpkg), zipped Shapefile (.zip), CSV with coordinates (.csv)"
        raise _fatal(name, f"unsupported file type '{ext or '(none)'}' for {what}; use {formats}")
    if not path.is_file():
        raise _fatal(name, f"file not found: {path}")
    if path.stat().st_size == 0:
        raise _fatal(name, "the file is empty")
    kind = SUPPORTED_FORMATS[ext]
    if kind == "CSV":
        table = _read_csv_upload(path, name)
        upload = _Upload(name, kind, table, np.arange(len(table)) + 2)
    else:
        if kind == "zipped Shapefile":
            uploads.check_zip(path, name)
        gdf = _read_spatial_upload(path, name, kind)
        table = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
        upload = _Upload(name, kind, table, np.arange(len(gdf)) + 1)
    if len(upload.table) == 0:
        raise _fatal(name, f"the file has no rows (no {what})")
    normalised = [str(c).strip().lower() for c in upload.table.columns]
    dupes = sorted({c for c in normalised if normalised.count(c) > 1})
    if dupes:
        raise _fatal(name, "column appears more than once (names ignore case)", ", ".join(dupes))
    upload.table.columns = normalised
    upload.table = upload.table.reset_index(drop=True)
    # records of individual people are refused before anything else is done with them
    uploads.check_aggregate_only(upload.table, name, what, upload.rows)
    if kind == "CSV":
        _csv_geometry(upload)
    else:
        _spatial_geometry(upload, gdf)
    return upload


#: First bytes of files that are not text: Excel workbooks (.xlsx is a zip, .xls an OLE
#: compound file), zips and GeoPackages (SQLite).
_BINARY_SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook (.xlsx) or a zip file",
    b"\xd0\xcf\x11\xe0": "an old-style Excel workbook (.xls)",
    b"SQLite format 3": "a GeoPackage or SQLite database",
}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _csv_text(raw: bytes, name: str) -> str:
    """The text of an uploaded CSV: UTF-8 (with or without BOM), UTF-16 with a BOM,
    Windows-1252, or Latin-1 (which reads any bytes), tried in that order.

    Refuses a spreadsheet or zip saved under a ``.csv`` name, and a file with NUL bytes
    (not a text file), naming the row of the first one.
    """
    for signature, what in _BINARY_SIGNATURES.items():
        if raw.startswith(signature):
            raise _fatal(name, f"this is {what}, not a CSV file: in Excel use File > Save As > "
                               "'CSV UTF-8 (comma delimited)' and upload that")  # fmt: skip
    if raw.startswith(_UTF16_BOMS):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise _fatal(name, "could not read the file as CSV: broken UTF-16 text") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        row = raw.count(b"\n", 0, nul) + 1
        raise InputError(
            Problem(name, row, None, "the row holds a NUL byte (character 0), so this is not a "
                                     "text CSV file: save it again as CSV UTF-8 and upload that")
        )  # fmt: skip
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _check_row_lengths(text: str, name: str) -> None:
    """Refuse a row with more values than the header has columns (pandas would quietly
    shift such a table's columns, or drop the extra values)."""
    try:
        records = (r for r in csv.reader(io.StringIO(text, newline="")) if r)
        header = next(records, None)
        if header is None:
            return
        for k, record in enumerate(records, start=2):
            if len(record) > len(header):
                raise InputError(
                    Problem(name, k, None, f"the row has {len(record)} values but the header names "
                                           f"{len(header)} columns: put any value holding a comma "
                                           "in double quotes")
                )  # fmt: skip
    except csv.Error as exc:
        raise _fatal(name, f"could not read the file as CSV: {exc}") from None


def _read_csv_upload(path: Path, name: str) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except OSError:
        raise _fatal(name, "the file could not be read") from None
    text = _csv_text(raw, name)
    _check_row_lengths(text, name)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise _fatal(name, "the file is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        detail = str(exc).replace(str(path), name).strip() or type(exc).__name__
        raise _fatal(name, f"could not read the file as CSV: {detail}") from None


def _read_spatial_upload(path: Path, name: str, kind: str) -> gpd.GeoDataFrame:
    try:
        if kind == "zipped Shapefile":
            with zipfile.ZipFile(path) as zf:
                shps = [n for n in zf.namelist() if n.lower().endswith(".shp")]
            if not shps:
                raise _fatal(name, "the zip file holds no Shapefile (.shp)")
            if len(shps) > 1:
                raise _fatal(name, f"the zip file holds {len(shps)} Shapefiles; upload one")
        layers = pyogrio.list_layers(path)
        if len(layers) > 1:
            raise _fatal(name, f"the file holds {len(layers)} layers; upload one")
        gdf = gpd.read_file(path)
        if not isinstance(gdf, gpd.GeoDataFrame) or gdf._geometry_column_name not in gdf:
            raise _fatal(name, f"the {kind} holds no geometry (no points or polygons)")
    except InputError:
        raise
    except Exception as exc:  # GDAL and zipfile raise many kinds of errors
        raise _fatal(
            name, f"could not read the file as {kind}: {_gdal_detail(exc, path, name)}"
        ) from None
    return gdf


def _gdal_detail(exc: Exception, path: Path, name: str) -> str:
    """GDAL's reason in the user's terms: the file named as they named it (not by its
    path on the server), and no advice meant for programmers."""
    detail = str(exc).replace(str(path), name).replace(str(path.parent), "").strip()
    if "not recognized as being in a supported file format" in detail:
        return "it is not in that format (it may be damaged, or be another kind of file)"
    if not isinstance(exc, pyogrio.errors.DataSourceError | pyogrio.errors.DataLayerError):
        # not GDAL's reason but a symptom inside the reader: the file is broken
        return "it is damaged or incomplete (a Shapefile needs its .shp, .shx and .dbf files)"
    return detail or type(exc).__name__


def _parse_numbers(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numbers from a column: (values, missing, not_a_number)."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        missing = np.isnan(num)
        bad = np.isinf(num)
        return np.where(bad, np.nan, num), missing, bad
    text = values.astype("string").fillna("").str.strip()
    missing = (text == "").to_numpy()
    num = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    num = num.astype(float).to_numpy()
    bad = ~np.isfinite(num) & ~missing
    return np.where(bad, np.nan, num), missing, bad


def _csv_geometry(upload: _Upload) -> None:
    cols = upload.table.columns
    pair = next(
        ((xc, yc, crs) for xc, yc, crs in _COORDINATE_PAIRS if xc in cols and yc in cols), None
    )
    n = len(upload.table)
    upload.geometry = np.full(n, None, dtype=object)
    if pair is None:
        upload.add(
            None,
            "x, y",
            "no coordinate columns: give x,y (British National Grid metres, EPSG:27700) "
            "or lon,lat (WGS84 degrees)",
        )
        return
    xc, yc, crs = pair
    xs, xmiss, xbad = _parse_numbers(upload.table[xc])
    ys, ymiss, ybad = _parse_numbers(upload.table[yc])
    ok = np.ones(n, dtype=bool)
    for col, miss, bad in ((xc, xmiss, xbad), (yc, ymiss, ybad)):
        for pos in np.flatnonzero(miss):
            upload.add(pos, col, "coordinate is missing")
        for pos in np.flatnonzero(bad):
            upload.add(pos, col, f"'{upload.table[col].iloc[pos]}' is not a number")
        ok &= ~miss & ~bad
    if crs == BNG:
        degrees = ok & (np.abs(xs) <= 180) & (np.abs(ys) <= 90)
        for pos in np.flatnonzero(degrees):
            upload.add(
                pos,
                xc,
                f"x={xs[pos]:g}, y={ys[pos]:g} look like longitude/latitude, not British "
                "National Grid metres (EPSG:27700): name the columns lon,lat or convert them",
            )
        ok &= ~degrees
        bx, by = xs, ys
    else:
        metres = ok & ((np.abs(xs) > 180) | (np.abs(ys) > 90))
        for pos in np.flatnonzero(metres):
            upload.add(
                pos,
                xc,
                f"{xc}={xs[pos]:g}, {yc}={ys[pos]:g} look like metres, not WGS84 degrees: "
                "name British National Grid columns x,y",
            )
        ok &= ~metres
        tr = Transformer.from_crs(WGS84, BNG, always_xy=True)
        bx, by = tr.transform(np.where(ok, xs, 0.0), np.where(ok, ys, 0.0))
    upload.geometry[ok] = shapely.points(np.asarray(bx)[ok], np.asarray(by)[ok])
    _check_gb_bounds(upload, ok, xc)


def _check_gb_bounds(upload: _Upload, ok: np.ndarray, column: str) -> None:
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return
    b = shapely.bounds(upload.geometry[idx])
    xmin, ymin, xmax, ymax = GB_BOUNDS_BNG
    out = (b[:, 0] < xmin) | (b[:, 1] < ymin) | (b[:, 2] > xmax) | (b[:, 3] > ymax)
    for pos in idx[out]:
        upload.add(
            pos,
            column,
            "lies outside Great Britain; check the coordinates and their coordinate reference system",
        )
        upload.geometry[pos] = None


_UNUSABLE_CRS = (
    "the file's coordinate reference system cannot be converted to British National Grid "
    "(it may be damaged): save the file in EPSG:27700 or WGS84 EPSG:4326 and upload it again"
)


def _spatial_geometry(upload: _Upload, gdf: gpd.GeoDataFrame) -> None:
    geoms = np.asarray(gdf.geometry.values, dtype=object)
    n = len(geoms)
    upload.geometry = np.full(n, None, dtype=object)
    missing = shapely.is_missing(geoms)
    empty = ~missing & shapely.is_empty(np.where(missing, shapely.Point(), geoms))
    for pos in np.flatnonzero(missing):
        upload.add(pos, GEOMETRY, "geometry is missing")
    for pos in np.flatnonzero(empty):
        upload.add(pos, GEOMETRY, "geometry is empty")
    present = ~missing & ~empty
    valid = np.zeros(n, dtype=bool)
    valid[present] = shapely.is_valid(geoms[present])
    for pos in np.flatnonzero(present & ~valid):
        reason = shapely.is_valid_reason(geoms[pos])
        what = "the polygon crosses itself" if reason.startswith("Self-intersection") else "invalid"
        upload.add(
            pos,
            GEOMETRY,
            f"geometry is not valid: {what} ({reason}). It was not repaired automatically "
            "(make_valid was not applied): fix it, e.g. with QGIS 'Fix geometries', and upload again",
        )
    ok = present & valid
    crs = gdf.crs
    if crs is None:
        # pyogrio gives GeoJSON without a "crs" member EPSG:4326, as the spec says.
        upload.add(
            None,
            GEOMETRY,
            "no coordinate reference system: save the file with one (British National Grid "
            "EPSG:27700 or WGS84 EPSG:4326)",
        )
        return
    try:
        crs = CRS(crs)
    except CRSError:
        upload.add(None, GEOMETRY, _UNUSABLE_CRS)
        return
    if ok.any():
        b = shapely.total_bounds(geoms[ok])
        in_degrees = abs(b[0]) <= 180 and abs(b[2]) <= 180 and abs(b[1]) <= 90 and abs(b[3]) <= 90
        if crs.is_geographic and not in_degrees:
            upload.add(
                None,
                GEOMETRY,
                f"coordinates look like metres but the file's coordinate reference system is "
                f"{crs.name} (degrees): set it to British National Grid (EPSG:27700)",
            )
            return
        if not crs.is_geographic and in_degrees:
            upload.add(
                None,
                GEOMETRY,
                f"coordinates look like longitude/latitude degrees but the file's coordinate "
                f"reference system is {crs.name} (metres): set it to WGS84 (EPSG:4326)",
            )
            return
        try:
            projected = gpd.GeoSeries(geoms[ok], crs=crs).to_crs(BNG).values
        except (ProjError, CRSError, ValueError):  # a damaged or unusual .prj
            upload.add(None, GEOMETRY, _UNUSABLE_CRS)
            return
        upload.geometry[ok] = np.asarray(projected, dtype=object)
    _check_gb_bounds(upload, ok, GEOMETRY)


@functools.lru_cache(maxsize=1)
def _england_centres() -> cKDTree:
    lsoas = load_lsoas(columns=[CENTROID_X, CENTROID_Y])
    return cKDTree(lsoas[[CENTROID_X, CENTROID_Y]].to_numpy(dtype=float))


def _check_in_england(upload: _Upload, column: str) -> None:
    """Without a footprint to check against, every area or site must lie in England."""
    idx = np.flatnonzero([g is not None for g in upload.geometry])
    if len(idx) == 0:
        return
    pts = _representative_points(upload.geometry[idx])
    xy = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])
    dist, _ = _england_centres().query(xy)
    for pos, d in zip(idx, dist, strict=True):
        if d > ENGLAND_TOLERANCE_M:
            upload.add(
                pos,
                column,
                f"lies outside England ({d / 1000:.0f} km from the nearest English small area); "
                "check the coordinates and their coordinate reference system",
            )
            upload.geometry[pos] = None


def _at_most(upload: _Upload, column: str, values: np.ndarray, limit: float, what: str) -> None:
    """A problem for each value above ``limit`` (``what``: e.g. "people in one area")."""
    for pos in np.flatnonzero(~np.isnan(values) & (values > limit)):
        upload.add(
            pos, column, f"{values[pos]:,.0f} is more than {limit:,.0f} {what}; check the value"
        )


def _footprint_label(footprint: gpd.GeoDataFrame) -> str:
    if ICB_SHORT in footprint.columns and footprint[ICB_SHORT].nunique() == 1:
        return f"the {footprint[ICB_SHORT].iloc[0]} footprint"
    return "the footprint"


def _footprint_bng(footprint: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if footprint.crs is None:
        raise InputError(Problem("footprint", None, GEOMETRY, "no coordinate reference system"))
    return footprint if CRS(footprint.crs) == CRS(BNG) else footprint.to_crs(BNG)


def _check_in_footprint(upload: _Upload, footprint: gpd.GeoDataFrame, column: str) -> None:
    """Flag points farther than the tolerance, or polygons mostly outside."""
    idx = np.flatnonzero(~shapely.is_missing(upload.geometry))
    if len(idx) == 0:
        return
    geoms = upload.geometry[idx]
    fp = footprint.geometry.values
    tree = shapely.STRtree(fp)
    label = _footprint_label(footprint)
    is_point = shapely.get_type_id(geoms) == 0
    for pos, g, point in zip(idx, geoms, is_point, strict=True):
        if point:
            near = tree.query(g, predicate="dwithin", distance=FOOTPRINT_TOLERANCE_M)
            if len(near) == 0:
                dist = float(shapely.distance(fp[tree.nearest(g)], g))
                upload.add(
                    pos, column, f"lies outside {label} ({dist / 1000:.1f} km from its edge)"
                )
        else:
            hits = tree.query(g, predicate="intersects")
            inside = (
                float(shapely.area(shapely.intersection(fp[hits], g)).sum()) if len(hits) else 0.0
            )
            total = float(shapely.area(g)) or 1.0
            if inside / total < FOOTPRINT_MIN_OVERLAP:
                upload.add(
                    pos,
                    column,
                    f"lies outside {label} (only {100 * inside / total:.0f}% of the area is inside)",
                )


def _lookup_in_footprint(geoms: np.ndarray, footprint: gpd.GeoDataFrame) -> np.ndarray:
    """Position in ``footprint`` of the area holding each geometry's representative point."""
    pts = _representative_points(geoms)
    fp = footprint.geometry.values
    tree = shapely.STRtree(fp)
    src, hit = tree.query(pts, predicate="within")
    out = np.full(len(pts), -1)
    out[src[::-1]] = hit[::-1]  # first hit wins
    miss = np.flatnonzero(out < 0)
    if len(miss):
        out[miss] = tree.nearest(pts[miss])
    return out


def _parse_bool(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Booleans from a column: (values, missing, not_understood)."""
    if pd.api.types.is_bool_dtype(values):
        arr = values.to_numpy(dtype=bool)
        return arr, np.zeros(len(arr), bool), np.zeros(len(arr), bool)
    text = values.astype("string").fillna("").str.strip().str.lower()
    text = text.str.replace(r"\.0$", "", regex=True)
    missing = (text == "").to_numpy()
    true = text.isin(_TRUE).to_numpy()
    false = text.isin(_FALSE).to_numpy()
    return true, missing, ~(true | false | missing)


def _require(upload: _Upload, columns: Sequence[str]) -> list[str]:
    present = []
    for col in columns:
        if col in upload.table.columns:
            present.append(col)
        else:
            found = ", ".join(upload.table.columns) or "none"
            upload.add(None, col, f"required column is missing (columns found: {found})")
    return present


def _unique_codes(upload: _Upload, column: str) -> pd.Series:
    codes = upload.table[column].astype("string").fillna("").str.strip()
    for pos in np.flatnonzero((codes == "").to_numpy()):
        upload.add(pos, column, "code is missing")
    first_row: dict[str, int] = {}
    for pos, code in enumerate(codes):
        if code == "":
            continue
        if code in first_row:
            upload.add(
                pos,
                column,
                f"duplicate code '{code}' (rows {first_row[code]} and {int(upload.rows[pos])}); "
                "codes must be unique",
            )
        else:
            first_row[code] = int(upload.rows[pos])
    return codes


def _non_negative(upload: _Upload, column: str, integer: bool, required: bool) -> np.ndarray:
    num, missing, bad = _parse_numbers(upload.table[column])
    expected = "a whole number >= 0" if integer else "a number >= 0"
    if required:
        for pos in np.flatnonzero(missing):
            upload.add(pos, column, f"value is missing; expected {expected}")
    for pos in np.flatnonzero(bad):
        upload.add(
            pos, column, f"'{upload.table[column].iloc[pos]}' is not a number; expected {expected}"
        )
    neg = ~np.isnan(num) & (num < 0)
    for pos in np.flatnonzero(neg):
        upload.add(pos, column, f"{num[pos]:g} is negative; expected {expected}")
    if integer:
        frac = ~np.isnan(num) & ~neg & (np.mod(num, 1) != 0)
        for pos in np.flatnonzero(frac):
            upload.add(pos, column, f"{num[pos]:g} is not a whole number; expected {expected}")
    return num


def _as_int_if_whole(values: np.ndarray) -> np.ndarray:
    if np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0):
        return values.astype("int64")
    return values


def load_areas(path: str | Path, footprint: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Read user-supplied small areas and return an area table.

    Parameters
    ----------
    path
        GeoJSON (.geojson/.json), GeoPackage (.gpkg), zipped Shapefile (.zip),
        Shapefile (.shp) or CSV with coordinates: ``x,y`` (EPSG:27700 metres)
        or ``lon,lat`` / ``longitude,latitude`` (WGS84). Column names ignore case.
        Required fields: ``area_code`` (unique) and ``population`` (>= 0;
        ``pop_total`` is accepted too). Optional: ``name``, ``imd_decile``
        (1-10), ``rural`` (true/false, yes/no, 1/0, rural/urban),
        ``pop_0_15``, ``pop_16_59``, ``pop_60_plus``.
    footprint
        Area table (e.g. from :func:`load_footprint`). When given, every area
        must lie in it (points within ``FOOTPRINT_TOLERANCE_M``, polygons with
        at least ``FOOTPRINT_MIN_OVERLAP`` of their area) and a missing
        ``imd_decile`` or ``rural`` is taken from the footprint area holding the
        area's representative point. Without a footprint both must be given.

    Returns
    -------
    Area table indexed by ``area_code`` (see the module docstring); polygons or
    points in EPSG:27700; ``area_km2`` is NaN for points.

    Raises
    ------
    InputError
        Listing every problem found, each with file, row and field.
    """
    upload = _read_upload(path, "areas")
    table = upload.table
    if POP_TOTAL in table.columns and "population" not in table.columns:
        table = table.rename(columns={POP_TOTAL: "population"})
        upload.table = table
    present = _require(upload, ["area_code", "population"])
    n = len(table)
    codes = _unique_codes(upload, "area_code") if "area_code" in present else None
    pop = _non_negative(upload, "population", False, True) if "population" in present else None
    ages = {c: _non_negative(upload, c, False, False) for c in POP_AGE_COLUMNS if c in table}
    counts = ({"population": pop} if pop is not None else {}) | ages
    for column, values in counts.items():
        _at_most(upload, column, values, MAX_AREA_POPULATION, "people in one area")

    decile = np.full(n, np.nan)
    wrong = np.zeros(n, dtype=bool)
    if IMD_DECILE in table.columns:
        num, _, bad = _parse_numbers(table[IMD_DECILE])
        wrong = bad | (~np.isnan(num) & ~np.isin(num, np.arange(1, 11)))
        for pos in np.flatnonzero(wrong):
            upload.add(
                pos, IMD_DECILE, f"'{table[IMD_DECILE].iloc[pos]}' is not a whole number 1-10"
            )
        decile = np.where(wrong, np.nan, num)
    rural = np.zeros(n, dtype=bool)
    rural_missing = np.ones(n, dtype=bool)
    if RURAL in table.columns:
        rural, rural_missing, bad = _parse_bool(table[RURAL])
        for pos in np.flatnonzero(bad):
            upload.add(pos, RURAL, f"'{table[RURAL].iloc[pos]}' is not true/false (or rural/urban)")

    allowed = {"Point", "Polygon", "MultiPolygon"}
    _check_geometry_types(upload, allowed)
    if footprint is not None:
        footprint = _footprint_bng(footprint)
        _check_in_footprint(upload, footprint, _geometry_field(upload))
    else:
        _check_in_england(upload, _geometry_field(upload))

    need_fill = np.isnan(decile) | rural_missing
    if footprint is not None and need_fill.any():
        lacking = [c for c in (IMD_DECILE, RURAL) if c not in footprint.columns]
        if lacking:
            raise InputError(
                Problem(
                    "footprint", None, ", ".join(lacking), "column needed to fill areas is missing"
                )
            )
    if footprint is not None and need_fill.any() and not upload.problems:
        where = _lookup_in_footprint(upload.geometry[need_fill], footprint)
        fill_dec = footprint[IMD_DECILE].to_numpy()[where].astype(float)
        fill_rural = footprint[RURAL].to_numpy()[where].astype(bool)
        decile[need_fill] = np.where(np.isnan(decile[need_fill]), fill_dec, decile[need_fill])
        rural[need_fill] = np.where(rural_missing[need_fill], fill_rural, rural[need_fill])
        rural_missing[:] = False
    elif footprint is None:
        for column, lacking in ((IMD_DECILE, np.isnan(decile) & ~wrong), (RURAL, rural_missing)):
            why = "no footprint was given to take it from"
            if column not in table.columns:
                upload.add(None, column, f"column is missing and {why}")
                continue
            for pos in np.flatnonzero(lacking):
                upload.add(pos, column, f"value is missing and {why}")
    upload.raise_problems()

    geoms = upload.geometry
    pts = _representative_points(geoms)
    is_point = shapely.get_type_id(geoms) == 0
    names = (
        table["name"].astype("string").fillna("").str.strip().to_numpy()
        if "name" in table.columns
        else codes.to_numpy()
    )
    out = pd.DataFrame(
        {
            AREA_NAME: names,
            POP_TOTAL: _as_int_if_whole(pop),
            **{c: _as_int_if_whole(v) if not np.isnan(v).any() else v for c, v in ages.items()},
            IMD_DECILE: decile.astype("int64"),
            IMD_QUINTILE: quintile_from_decile(decile.astype("int64")),
            RURAL: rural.astype(bool),
            AREA_KM2: np.where(is_point, np.nan, np.round(shapely.area(geoms) / 1e6, 4)),
            CENTROID_X: np.round(shapely.get_x(pts)),
            CENTROID_Y: np.round(shapely.get_y(pts)),
        },
        index=pd.Index(codes.to_numpy(dtype=object), name=AREA_CODE),
    )
    gdf = gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geoms, index=out.index, crs=BNG))
    gdf.attrs["source"] = upload.name
    return gdf


def _geometry_field(upload: _Upload) -> str:
    if upload.kind != "CSV":
        return GEOMETRY
    cols = upload.table.columns
    return next((xc for xc, yc, _ in _COORDINATE_PAIRS if xc in cols and yc in cols), "x")


def _check_geometry_types(upload: _Upload, allowed: set[str]) -> None:
    for pos, g in enumerate(upload.geometry):
        if g is not None and g.geom_type not in allowed:
            upload.add(
                pos,
                GEOMETRY,
                f"geometry is a {g.geom_type}; expected {' or '.join(sorted(allowed))}",
            )
            upload.geometry[pos] = None


def load_sites(path: str | Path, footprint: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """Read user-supplied sites (existing services or candidate locations).

    Parameters
    ----------
    path
        CSV with ``x,y`` (EPSG:27700) or ``lon,lat`` / ``longitude,latitude``
        (WGS84) columns, or GeoJSON / GeoPackage / zipped Shapefile of points.
        Required: ``site_id`` (unique), ``name``. Optional: ``services``
        (``;``-separated, from ``SERVICE_TYPES``), capacity columns
        ``inpatient_beds``, ``crisis_house_places``, ``mobile_teams``,
        ``place_of_safety_suites`` (whole numbers >= 0; blank = not given),
        ``status`` (``existing`` or ``candidate``; blank = ``existing``).
        Without a ``services`` column a site offers the services it has
        capacity for; with one, capacity for a service not listed is an error.
    footprint
        Area table; when given, every site must lie within
        ``FOOTPRINT_TOLERANCE_M`` of it.

    Returns
    -------
    GeoDataFrame indexed by ``site_id`` with ``name``, ``services`` (canonical
    ``;``-joined string in ``SERVICE_TYPES`` order), the four capacity columns
    (nullable integers), ``status``, ``x``, ``y`` and point geometry (EPSG:27700).

    Raises
    ------
    InputError
        Listing every problem found, each with file, row and field.
    """
    upload = _read_upload(path, "sites")
    table = upload.table
    n = len(table)
    present = _require(upload, [SITE_ID, SITE_NAME])
    codes = _unique_codes(upload, SITE_ID) if SITE_ID in present else None
    if SITE_NAME in present:
        names = table[SITE_NAME].astype("string").fillna("").str.strip()
        for pos in np.flatnonzero((names == "").to_numpy()):
            upload.add(pos, SITE_NAME, "name is missing")
    capacity = {
        col: _non_negative(upload, col, True, False)
        for col in CAPACITY_COLUMNS.values()
        if col in table.columns
    }
    for service, col in CAPACITY_COLUMNS.items():
        if col in capacity:
            _at_most(
                upload,
                col,
                capacity[col],
                MAX_UNITS[service],
                f"{col.replace('_', ' ')} at one site",
            )
    offered: list[set[str]] = [set() for _ in range(n)]
    if SERVICES in table.columns:
        text = table[SERVICES].astype("string").fillna("").str.lower()
        for pos, cell in enumerate(text):
            for item in (s.strip() for s in re.split(r"[;,]", cell)):
                if not item:
                    continue
                item_key = item.replace(" ", "_").replace("-", "_")
                if item_key in SERVICE_TYPES:
                    offered[pos].add(item_key)
                else:
                    upload.add(
                        pos,
                        SERVICES,
                        f"unknown service '{item}'; expected one or more of "
                        f"{', '.join(SERVICE_TYPES)} separated by ';'",
                    )
    for service, col in CAPACITY_COLUMNS.items():
        if col not in capacity:
            continue
        positive = np.nan_to_num(capacity[col], nan=0.0) > 0
        for pos in np.flatnonzero(positive):
            if SERVICES not in table.columns:
                offered[pos].add(service)
            elif service not in offered[pos]:
                upload.add(
                    pos,
                    col,
                    f"capacity {capacity[col][pos]:g} given but the site's services do not "
                    f"include '{service}'",
                )
    status = np.full(n, DEFAULT_SITE_STATUS, dtype=object)
    if STATUS in table.columns:
        raw = table[STATUS].astype("string").fillna("").str.strip().str.lower()
        for pos, value in enumerate(raw):
            if value == "":
                continue
            if value in SITE_STATUSES:
                status[pos] = value
            else:
                upload.add(
                    pos,
                    STATUS,
                    f"'{table[STATUS].iloc[pos]}' is not one of {', '.join(SITE_STATUSES)}",
                )
    _check_geometry_types(upload, {"Point"})
    if footprint is not None:
        _check_in_footprint(upload, _footprint_bng(footprint), _geometry_field(upload))
    else:
        _check_in_england(upload, _geometry_field(upload))
    upload.raise_problems()

    geoms = upload.geometry
    out = pd.DataFrame(
        {
            SITE_NAME: names.to_numpy(),
            SERVICES: [";".join(s for s in SERVICE_TYPES if s in o) for o in offered],
            **{
                col: pd.Series(capacity.get(col, np.full(n, np.nan))).astype("Int64").array
                for col in CAPACITY_COLUMNS.values()
            },
            STATUS: status,
            X: np.round(shapely.get_x(geoms), 1),
            Y: np.round(shapely.get_y(geoms), 1),
        },
        index=pd.Index(codes.to_numpy(dtype=object), name=SITE_ID),
    )
    gdf = gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geoms, index=out.index, crs=BNG))
    gdf.attrs["source"] = upload.name
    return gdf
