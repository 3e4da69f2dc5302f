"""Road travel minutes between small areas and sites.

Two sources of travel times:

- :class:`TravelModel`, a compact model fitted (by ``data/build/fit_travel.py``)
  to real road travel times from every LSOA in England and Wales to 125 hospital
  postcodes. It gives minutes between *any* two points in British National Grid
  metres (EPSG:27700), so sites that do not exist yet are priced like real ones.
- :func:`load_matrix`, a matrix the user supplies (CSV or Parquet, long or wide).

The model (see ``docs/travel.md``) is, for straight-line distance ``d`` km::

    log t = c(d) + f(origin) + f(destination) + w(d) * mean_k h(p_k)
    minutes = max(exp(log t) + g(origin, destination), FLOOR_MINUTES)

- ``c(d)`` is a monotone curve, piecewise linear in ``log(1 + d)``;
- ``f`` is a local road-speed factor (log scale) attached to each LSOA and, for
  any other point, taken from the nearest LSOA centroid;
- ``h`` is a 10 km grid of "corridor" factors (log scale) averaged over
  ``samples`` points spaced evenly along the straight line, which picks up
  estuaries, moors and motorway corridors between the two ends;
- ``w(d) = d / (d + 5 km)`` fades the corridor term out for very short trips;
- ``g(o, s)`` is the fitted crossing time (minutes, added to the road time) of
  a trip between two land components of the LSOA geography (the mainland and
  an island such as the Isle of Wight): the sum of the two ends' island
  crossing minutes when they lie on different components, else 0. A point lies
  on the component of its nearest LSOA centroid, as it takes that LSOA's factor.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import shapely
from scipy.spatial import cKDTree

from pathways._paths import data_dir
from pathways.errors import InputError, Problem

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- constants

MODEL_TABLE_FILE = "travel_model.parquet"
MODEL_PARAMS_FILE = "travel_model.json"
MODEL_FORMAT = "pathways-travel-model/1"

# columns of the model's per-LSOA table
LSOA11CD = "lsoa11cd"
X = "x"
Y = "y"
LOG_FACTOR = "log_factor"
ISLAND = "island"  # land component: 0 = the mainland, k > 0 = island k (optional column)
MODEL_COLUMNS = (LSOA11CD, X, Y, LOG_FACTOR)

# columns of a long-form user matrix
AREA_CODE = "area_code"
SITE_ID = "site_id"
MINUTES = "minutes"
LONG_COLUMNS = (AREA_CODE, SITE_ID, MINUTES)

# coordinate columns accepted by travel_matrix, in order of preference
AREA_XY_COLUMNS = (("x", "y"), ("centroid_x", "centroid_y"))
SITE_XY_COLUMNS = (("x", "y"), ("x_m", "y_m"))

BNG_EPSG = 27700
FLOOR_MINUTES = 2.0
# points sampled per block of origins: small blocks keep the working arrays (about
# 256 KB each) in cache, which is twice as fast as one big block
_BLOCK_SAMPLES = 32_768
_MAX_LISTED = 5


# --------------------------------------------------------------------------- helpers


def straight_line_km(a_xy: np.ndarray, b_xy: np.ndarray) -> np.ndarray:
    """Straight-line distance in km between every point of ``a_xy`` and of ``b_xy``.

    Parameters
    ----------
    a_xy, b_xy : array_like, shape (n, 2) and (m, 2)
        Points in British National Grid metres.

    Returns
    -------
    numpy.ndarray, shape (n, m)
    """
    a = _as_points(a_xy, "a_xy")
    b = _as_points(b_xy, "b_xy")
    dx = a[:, None, 0] - b[None, :, 0]
    dy = a[:, None, 1] - b[None, :, 1]
    return np.hypot(dx, dy) / 1000.0


def curve_basis(d_km: np.ndarray, knots_km: np.ndarray) -> np.ndarray:
    """Design matrix of the distance curve: ``[1, u, max(u - log1p(k), 0) ...]``, ``u = log1p(d)``.

    A piecewise-linear function of ``log(1 + d)`` with breaks at ``knots_km``.
    Shared by the fitting script and the model so both use the same curve.
    """
    u = np.log1p(np.asarray(d_km, dtype=float))
    cols = [np.ones_like(u), u]
    cols += [np.maximum(u - np.log1p(k), 0.0) for k in np.asarray(knots_km, dtype=float)]
    return np.stack(cols, axis=-1)


def curve_log(d_km: np.ndarray, knots_km: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """The distance curve, log minutes: ``curve_basis(d_km, knots_km) @ coef`` without the matrix."""
    u = np.log1p(np.asarray(d_km, dtype=float))
    out = coef[0] + coef[1] * u
    for k, c in zip(np.log1p(np.asarray(knots_km, dtype=float)), coef[2:], strict=True):
        out += c * np.maximum(u - k, 0.0)
    return out


def sample_fractions(samples: int) -> np.ndarray:
    """Positions (0..1) of the points sampled along each straight line: interval midpoints."""
    return (np.arange(samples, dtype=float) + 0.5) / samples


def corridor_weight(d_km: np.ndarray, half_km: float) -> np.ndarray:
    """Share of the corridor term at distance ``d_km``: ``d / (d + half_km)``.

    Zero for a trip that goes nowhere (so a place's own grid cell, which may be
    mostly sea, does not price its local trips), a half at ``half_km``, and
    near one for the long trips the corridor grid is about.
    """
    return d_km / (d_km + half_km)


def to_grid_units(xy: np.ndarray, origin: tuple[float, float], cell_m: float) -> np.ndarray:
    """Points in cell units of the corridor grid padded by one cell on every side."""
    return (np.asarray(xy, dtype=float) - np.asarray(origin, dtype=float)) / cell_m + 1.0


def line_cells(
    og: np.ndarray, dg: np.ndarray, fractions: np.ndarray, padded_shape: tuple[int, int]
) -> np.ndarray:
    """Flat cell index of the points sampled along straight lines.

    Parameters
    ----------
    og, dg : numpy.ndarray, shape (..., 2)
        Line ends in padded grid units (:func:`to_grid_units`); they broadcast,
        so ``og[:, None]`` with ``dg[None, :]`` gives every origin-destination line.
    fractions : numpy.ndarray, shape (k,)
        Positions (0..1) of the points along each line.
    padded_shape : (int, int)
        (rows, columns) of the padded grid. Points off the grid fall in the
        padding, which holds zeros.

    Returns
    -------
    numpy.ndarray of intp, shape (..., k)
    """
    ny2, nx2 = padded_shape
    off_grid = (
        min(og.min(), dg.min()) < 0
        or max(og[..., 0].max(), dg[..., 0].max()) >= nx2
        or max(og[..., 1].max(), dg[..., 1].max()) >= ny2
    )
    u = (dg[..., 0] - og[..., 0])[..., None] * fractions
    u += og[..., 0, None]
    if off_grid:
        np.clip(u, 0, nx2 - 1, out=u)
    cells = u.astype(np.intp)
    np.multiply((dg[..., 1] - og[..., 1])[..., None], fractions, out=u)
    u += og[..., 1, None]
    if off_grid:
        np.clip(u, 0, ny2 - 1, out=u)
    rows = u.astype(np.intp)
    rows *= nx2
    cells += rows
    return cells


def corridor_mean(
    og: np.ndarray, dg: np.ndarray, grid_padded: np.ndarray, fractions: np.ndarray
) -> np.ndarray:
    """Mean of the padded grid over the points along every origin-destination line.

    Parameters
    ----------
    og, dg : numpy.ndarray, shape (n, 2) and (m, 2)
        Origins and destinations in padded grid units (:func:`to_grid_units`).
    grid_padded : numpy.ndarray, shape (ny + 2, nx + 2)
        The grid with one cell of zeros on every side.
    fractions : numpy.ndarray, shape (k,)
        Positions (0..1) of the points along each line.

    Returns
    -------
    numpy.ndarray, shape (n, m)
    """
    n, m = len(og), len(dg)
    out = np.empty((n, m))
    if out.size == 0:
        return out
    flat = grid_padded.ravel()
    block = max(1, _BLOCK_SAMPLES // (m * len(fractions)))
    for start in range(0, n, block):
        cells = line_cells(og[start : start + block, None], dg[None], fractions, grid_padded.shape)
        out[start : start + block] = flat.take(cells).sum(axis=-1)
    out /= len(fractions)
    return out


def island_term(origin_island: np.ndarray, dest_island: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Crossing minutes of every origin-destination pair, shape (n, m).

    ``origin_island`` and ``dest_island`` hold the land component of each end
    (0 = the mainland, k > 0 = island k) and ``cost[k]`` the crossing minutes of
    island k (``cost[0] == 0``). A pair whose ends lie on different components
    pays both ends' costs (island to mainland: that island's; island to another
    island: both); a pair on one component pays nothing.
    """
    io = np.asarray(origin_island, dtype=np.intp)
    idd = np.asarray(dest_island, dtype=np.intp)
    cost = np.asarray(cost, dtype=float)
    out = cost[io][:, None] + cost[idd][None, :]
    out[io[:, None] == idd[None, :]] = 0.0
    return out


def _as_points(xy: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(xy, dtype=float)
    if arr.ndim == 1 and arr.size == 2:
        arr = arr.reshape(1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) (x, y metres); got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has missing or infinite coordinates")
    return arr


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, eq=False)
class TravelModel:
    """Road travel minutes between any points in England and Wales (EPSG:27700 metres).

    Build with :meth:`load`; the fields hold the fitted parameters.

    Attributes
    ----------
    codes : numpy.ndarray of str, shape (N,)
        LSOA 2011 codes carrying a local road-speed factor.
    centroids : numpy.ndarray, shape (N, 2)
        Their centroids (metres), used to find the factor of any other point.
    log_factor : numpy.ndarray, shape (N,)
        Local road-speed factor, log scale (0 = average; 0.1 = about 10 % slower).
    knots_km, curve_coef : numpy.ndarray
        The distance curve (see :func:`curve_basis`).
    grid_origin : tuple of float
        South-west corner of the corridor grid (metres).
    grid_cell_m : float
        Size of a corridor grid cell (metres).
    grid : numpy.ndarray, shape (ny, nx)
        Corridor factors, log scale; row 0 is the southernmost.
    samples : int
        Points sampled along each straight line.
    corridor_half_km : float
        Distance at which the corridor term counts half (:func:`corridor_weight`).
    floor_minutes : float
        No journey is quicker than this.
    island : numpy.ndarray of int, shape (N,), optional
        Land component of each LSOA: 0 = the mainland, k > 0 = island k.
        Defaults to all mainland (no crossing costs).
    island_minutes : numpy.ndarray, shape (K + 1,), optional
        Crossing minutes of each island, added to the road time of a trip
        between it and another component; entry 0 (the mainland) is 0.
    island_names : tuple of str, optional
        A name for each island 1..K (for reports).
    """

    codes: np.ndarray
    centroids: np.ndarray
    log_factor: np.ndarray
    knots_km: np.ndarray
    curve_coef: np.ndarray
    grid_origin: tuple[float, float]
    grid_cell_m: float
    grid: np.ndarray
    samples: int
    corridor_half_km: float
    floor_minutes: float = FLOOR_MINUTES
    island: np.ndarray | None = None
    island_minutes: np.ndarray | None = None
    island_names: tuple[str, ...] = ()
    _tree: cKDTree = field(init=False, repr=False)
    _code_row: dict[str, int] = field(init=False, repr=False)
    _grid_padded: np.ndarray = field(init=False, repr=False)
    _fractions: np.ndarray = field(init=False, repr=False)
    _any_island: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.codes) != len(self.centroids) or len(self.codes) != len(self.log_factor):
            raise ValueError("codes, centroids and log_factor must have the same length")
        if len(self.curve_coef) != len(self.knots_km) + 2:
            raise ValueError("curve_coef must have len(knots_km) + 2 entries")
        island = np.zeros(len(self.codes), dtype=np.intp) if self.island is None else self.island
        island = np.asarray(island, dtype=np.intp)
        if island.shape != (len(self.codes),) or (len(island) and island.min() < 0):
            raise ValueError("island must hold one component number >= 0 per LSOA")
        n_islands = int(island.max()) if len(island) else 0
        cost = np.zeros(n_islands + 1) if self.island_minutes is None else self.island_minutes
        cost = np.asarray(cost, dtype=float)
        if cost.ndim != 1 or len(cost) < n_islands + 1 or cost[0] != 0.0:
            raise ValueError("island_minutes needs one entry per island after a 0 for the mainland")
        object.__setattr__(self, "island", island)
        object.__setattr__(self, "island_minutes", cost)
        object.__setattr__(self, "island_names", tuple(str(v) for v in self.island_names))
        object.__setattr__(self, "_any_island", bool(np.any(cost[island] != 0.0)))
        object.__setattr__(self, "_tree", cKDTree(self.centroids))
        object.__setattr__(self, "_code_row", {str(c): i for i, c in enumerate(self.codes)})
        object.__setattr__(self, "_grid_padded", np.pad(np.asarray(self.grid, dtype=float), 1))
        object.__setattr__(self, "_fractions", sample_fractions(self.samples))

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: str | Path | None = None) -> TravelModel:
        """Read the bundled model (``data/travel_model.parquet`` + ``.json``).

        Parameters
        ----------
        path : path, optional
            The ``.parquet`` file or the folder holding both files; the ``.json``
            sits next to the ``.parquet`` with the same stem. Defaults to the
            bundled data folder. Repeated loads of the same file are cached.
        """
        if path is None:
            table = data_dir() / MODEL_TABLE_FILE
        else:
            table = Path(path)
            if table.is_dir():
                table = table / MODEL_TABLE_FILE
        return _load_cached(str(table.resolve()))

    # ------------------------------------------------------------------ pieces

    def curve_minutes(self, d_km: np.ndarray) -> np.ndarray:
        """Minutes for straight-line distance ``d_km`` between two average places."""
        return np.exp(curve_log(d_km, self.knots_km, self.curve_coef))

    def factor_rows(self, xy: np.ndarray) -> np.ndarray:
        """Row of the nearest LSOA centroid for each point of ``xy``."""
        _, rows = self._tree.query(_as_points(xy, "xy"))
        return np.asarray(rows, dtype=np.intp)

    def point_log_factors(
        self, xy: np.ndarray, codes: Sequence[object] | np.ndarray | None = None
    ) -> np.ndarray:
        """Local road-speed factors (log scale) of points.

        A point with a known LSOA code takes that LSOA's factor; any other
        point takes the factor of the nearest LSOA centroid.
        """
        return self.log_factor[self.point_rows(xy, codes)]

    def point_islands(
        self, xy: np.ndarray, codes: Sequence[object] | np.ndarray | None = None
    ) -> np.ndarray:
        """Land component of points (0 = the mainland), by the same rule as their factors."""
        return self.island[self.point_rows(xy, codes)]

    def point_rows(
        self, xy: np.ndarray, codes: Sequence[object] | np.ndarray | None = None
    ) -> np.ndarray:
        """LSOA row of each point: its own for a known code, else the nearest centroid's."""
        pts = _as_points(xy, "xy")
        rows = np.full(len(pts), -1, dtype=np.intp)
        if codes is not None:
            codes = np.asarray(codes, dtype=object)
            if len(codes) != len(pts):
                raise ValueError(f"got {len(codes)} codes for {len(pts)} points")
            rows = np.fromiter(
                (self._code_row.get(str(c), -1) for c in codes), dtype=np.intp, count=len(codes)
            )
        todo = rows < 0
        if todo.any():
            rows[todo] = self.factor_rows(pts[todo])
        return rows

    def corridor(self, origin_xy: np.ndarray, dest_xy: np.ndarray) -> np.ndarray:
        """Mean corridor factor (log scale) along each straight line, shape (n, m)."""
        return corridor_mean(
            to_grid_units(_as_points(origin_xy, "origin_xy"), self.grid_origin, self.grid_cell_m),
            to_grid_units(_as_points(dest_xy, "dest_xy"), self.grid_origin, self.grid_cell_m),
            self._grid_padded,
            self._fractions,
        )

    # ------------------------------------------------------------------ minutes

    def minutes(
        self,
        origin_xy: np.ndarray,
        dest_xy: np.ndarray,
        origin_codes: Sequence[object] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Road minutes from every origin to every destination.

        Parameters
        ----------
        origin_xy : array_like, shape (n, 2)
            Origins, British National Grid metres.
        dest_xy : array_like, shape (m, 2)
            Destinations, British National Grid metres (any point, real or planned).
        origin_codes : sequence of str, optional
            LSOA 2011 codes of the origins: a known code uses that LSOA's own
            factor; unknown codes (or ``None``) use the nearest LSOA centroid.

        Returns
        -------
        numpy.ndarray, shape (n, m)
            Minutes, finite and at least ``floor_minutes``.
        """
        o = _as_points(origin_xy, "origin_xy")
        d = _as_points(dest_xy, "dest_xy")
        if len(o) == 0 or len(d) == 0:
            return np.empty((len(o), len(d)))
        dist = straight_line_km(o, d)
        log_t = curve_log(dist, self.knots_km, self.curve_coef)
        o_rows = self.point_rows(o, origin_codes)
        d_rows = self.point_rows(d)
        log_t += self.log_factor[o_rows][:, None]
        log_t += self.log_factor[d_rows][None, :]
        log_t += corridor_weight(dist, self.corridor_half_km) * self.corridor(o, d)
        minutes = np.exp(log_t, out=log_t)
        if self._any_island:
            o_isl = self.island[o_rows]
            d_isl = self.island[d_rows]
            if o_isl.any() or d_isl.any():
                minutes += island_term(o_isl, d_isl, self.island_minutes)
        return np.maximum(minutes, self.floor_minutes, out=minutes)


@functools.lru_cache(maxsize=4)
def _load_cached(table_path: str) -> TravelModel:
    table = Path(table_path)
    params_path = table.with_suffix(".json")
    try:
        params = json.loads(params_path.read_text(encoding="utf-8"))
        names = pq.read_schema(table).names
        tab = pq.read_table(table, columns=[*MODEL_COLUMNS, *([ISLAND] if ISLAND in names else [])])
    except FileNotFoundError as err:
        raise InputError(
            Problem(
                str(err.filename or table),
                None,
                None,
                "travel model file not found; rebuild it with data/build/fit_travel.py",
            )
        ) from None
    if params.get("format") != MODEL_FORMAT:
        raise InputError(Problem(str(params_path), None, "format", f"expected '{MODEL_FORMAT}'"))
    grid = params["grid"]
    islands = params.get("islands") or {}
    model = TravelModel(
        codes=np.asarray(tab.column(LSOA11CD).to_pylist(), dtype=object),
        centroids=np.column_stack(
            [tab.column(X).to_numpy().astype(float), tab.column(Y).to_numpy().astype(float)]
        ),
        log_factor=tab.column(LOG_FACTOR).to_numpy().astype(float),
        knots_km=np.asarray(params["curve"]["knots_km"], dtype=float),
        curve_coef=np.asarray(params["curve"]["coef"], dtype=float),
        grid_origin=(float(grid["origin_m"][0]), float(grid["origin_m"][1])),
        grid_cell_m=float(grid["cell_m"]),
        grid=np.asarray(grid["log_factor"], dtype=float).reshape(grid["shape"]),
        samples=int(params["samples"]),
        corridor_half_km=float(params["corridor_half_km"]),
        floor_minutes=float(params.get("floor_minutes", FLOOR_MINUTES)),
        island=(
            tab.column(ISLAND).to_numpy().astype(np.intp) if ISLAND in tab.column_names else None
        ),
        island_minutes=(
            np.asarray([0.0, *islands["minutes"]], dtype=float) if "minutes" in islands else None
        ),
        island_names=tuple(islands.get("names", ())),
    )
    log.debug("travel model loaded from %s (%d LSOAs)", table, len(model.codes))
    return model


# --------------------------------------------------------------------------- tables


def _table_xy(df: pd.DataFrame, candidates: tuple[tuple[str, str], ...], what: str) -> np.ndarray:
    """Coordinates (metres, EPSG:27700) of a table's rows from columns or point geometry."""
    if isinstance(df, gpd.GeoDataFrame) and df.crs is not None and df.crs.to_epsg() != BNG_EPSG:
        raise InputError(
            Problem(what, None, "geometry", f"must be in EPSG:{BNG_EPSG} (got {df.crs})")
        )
    for cx, cy in candidates:
        if cx in df.columns and cy in df.columns:
            xy = df[[cx, cy]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
            field_names = (cx, cy)
            break
    else:
        if not isinstance(df, gpd.GeoDataFrame) or df.geometry.name not in df.columns:
            names = " or ".join(f"{a}/{b}" for a, b in candidates)
            raise InputError(Problem(what, None, None, f"needs columns {names} or a geometry"))
        geoms = df.geometry.to_numpy()
        # areas: the centroid, or a point on the surface where the centroid falls outside
        cent = shapely.centroid(geoms)
        pts = np.where(shapely.intersects(geoms, cent), cent, shapely.point_on_surface(geoms))
        xy = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])
        field_names = ("geometry", "geometry")
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        problems = [
            Problem(what, int(i) + 1, field_names[0], "missing or non-numeric coordinates")
            for i in np.flatnonzero(bad)
        ]
        raise InputError(problems)
    return xy


def travel_matrix(
    areas: pd.DataFrame, sites: pd.DataFrame, model: TravelModel | None = None
) -> pd.DataFrame:
    """Modelled road minutes from every area to every site.

    Parameters
    ----------
    areas : DataFrame or GeoDataFrame
        Origins with ``x``/``y`` or ``centroid_x``/``centroid_y`` columns
        (metres, EPSG:27700), or a geometry. If the index or an ``lsoa11cd``
        column holds LSOA codes, those LSOAs' own factors are used.
    sites : DataFrame or GeoDataFrame
        Destinations with ``x``/``y`` columns or point geometry; columns of the
        result are the ``site_id`` column if present, else the index.
    model : TravelModel, optional
        Defaults to the bundled model.

    Returns
    -------
    pandas.DataFrame
        Minutes; index = ``areas.index``, columns = site ids.

    Row numbers in errors count table rows from 1.
    """
    model = model if model is not None else TravelModel.load()
    a_xy = _table_xy(areas, AREA_XY_COLUMNS, "areas")
    s_xy = _table_xy(sites, SITE_XY_COLUMNS, "sites")
    codes = areas[LSOA11CD].to_numpy() if LSOA11CD in areas.columns else areas.index.to_numpy()
    site_ids = sites[SITE_ID] if SITE_ID in sites.columns else sites.index
    mins = model.minutes(a_xy, s_xy, origin_codes=codes)
    return pd.DataFrame(mins, index=areas.index.copy(), columns=pd.Index(site_ids, name=SITE_ID))


# --------------------------------------------------------------------------- user matrices


def _read_table(path: Path) -> tuple[pd.DataFrame, int]:
    """Read a CSV or Parquet file as text cells; returns the frame and the row of its first record."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".txt")):
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
            raise InputError(Problem(str(path), None, None, f"cannot read as CSV: {err}")) from None
        return df, 2  # header is row 1, as a spreadsheet shows it
    if name.endswith((".parquet", ".pq")):
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise InputError(
                Problem(str(path), None, None, f"cannot read as Parquet: {err}")
            ) from None
        return df, 1
    raise InputError(
        Problem(
            str(path),
            None,
            None,
            "unsupported travel matrix format: expected .csv, .csv.gz, .parquet or .pq",
        )
    )


def _as_key(value: object) -> str:
    """Text form of a code for matching (so site 7 and "7" are the same site)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _parse_minutes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Minutes as floats, and a message per cell ('' when fine)."""
    text = values.astype(object)
    missing = text.isna().to_numpy() | (text.astype(str).str.strip() == "").to_numpy()
    num = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(float)
    msg = np.full(len(values), "", dtype=object)
    msg[np.isnan(num) & ~missing] = "not a number"
    msg[missing] = "missing minutes"
    msg[np.isinf(num)] = "must be a finite number of minutes"
    msg[np.isfinite(num) & (num < 0)] = "must not be negative"
    return num, msg


def _sample(items: Sequence[str], total: int | None = None) -> str:
    """The first few items, and how many more there are."""
    total = len(items) if total is None else total
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {total - _MAX_LISTED} more" if total > _MAX_LISTED else "")


def load_matrix(
    path: str | Path, area_ids: Sequence[object], site_ids: Sequence[object]
) -> pd.DataFrame:
    """Read a user-supplied travel matrix (minutes) covering every area and site.

    Accepted layouts (CSV or Parquet):

    - long: columns ``area_code``, ``site_id``, ``minutes``, one row per pair;
    - wide: first column the area code, one further column per site id.

    Parameters
    ----------
    path : path
        ``.csv`` / ``.csv.gz`` or ``.parquet`` / ``.pq``.
    area_ids, site_ids : sequence
        Expected areas and sites; every pair must be present exactly once.
        Codes match by their text (site ``7`` matches ``"7"``).

    Returns
    -------
    pandas.DataFrame
        Minutes with index ``area_ids`` and columns ``site_ids`` (as given).

    Raises
    ------
    InputError
        Listing every problem found: unreadable or unsupported file, unknown
        area or site codes, duplicate pairs, missing pairs, missing,
        non-numeric or negative minutes. Rows count as a spreadsheet shows
        them (CSV header = row 1); in Parquet row N is the N-th record.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(Problem(str(path), None, None, "file not found"))
    df, first_row = _read_table(path)
    df.columns = [str(c).strip() for c in df.columns]
    area_key = {_as_key(a): i for i, a in enumerate(area_ids)}
    site_key = {_as_key(s): j for j, s in enumerate(site_ids)}
    if len(area_key) != len(area_ids) or len(site_key) != len(site_ids):
        raise ValueError("area_ids and site_ids must be unique")
    if all(c in df.columns for c in LONG_COLUMNS):
        out, problems = _long_form(df, str(path), first_row, area_key, site_key)
    elif len(df.columns) >= 2 and not any(c in df.columns for c in LONG_COLUMNS[1:]):
        out, problems = _wide_form(df, str(path), first_row, area_key, site_key)
    else:
        missing = [c for c in LONG_COLUMNS if c not in df.columns]
        problems = [
            Problem(
                str(path),
                1 if first_row == 2 else None,
                missing[0] if missing else None,
                "expected a long matrix (columns area_code, site_id, minutes) "
                "or a wide one (area code, then one column per site id); "
                f"missing column(s): {', '.join(missing)}",
            )
        ]
        out = None
    if problems:
        raise InputError(problems)
    return pd.DataFrame(
        out,
        index=pd.Index(list(area_ids), name=AREA_CODE),
        columns=pd.Index(list(site_ids), name=SITE_ID),
    )


def _long_form(
    df: pd.DataFrame, file: str, first_row: int, area_key: dict, site_key: dict
) -> tuple[np.ndarray, list[Problem]]:
    problems: list[Problem] = []
    rows = np.arange(len(df)) + first_row
    a_txt = [_as_key(v) for v in df[AREA_CODE].to_numpy(object)]
    s_txt = [_as_key(v) for v in df[SITE_ID].to_numpy(object)]
    ai = np.array([area_key.get(a, -1) for a in a_txt], dtype=np.intp)
    sj = np.array([site_key.get(s, -1) for s in s_txt], dtype=np.intp)
    mins, msg = _parse_minutes(df[MINUTES])
    out = np.full((len(area_key), len(site_key)), np.nan)
    first_seen: dict[tuple[int, int], int] = {}
    for k in range(len(df)):
        if ai[k] < 0:
            problems.append(
                Problem(file, int(rows[k]), AREA_CODE, f"unknown area code '{a_txt[k]}'")
            )
        if sj[k] < 0:
            problems.append(Problem(file, int(rows[k]), SITE_ID, f"unknown site id '{s_txt[k]}'"))
        if msg[k]:
            problems.append(
                Problem(file, int(rows[k]), MINUTES, f"{msg[k]} (got '{df[MINUTES].iat[k]}')")
            )
        if ai[k] < 0 or sj[k] < 0:
            continue
        pair = (int(ai[k]), int(sj[k]))
        if pair in first_seen:
            problems.append(
                Problem(
                    file,
                    int(rows[k]),
                    SITE_ID,
                    f"duplicate pair area '{a_txt[k]}', site '{s_txt[k]}' (first on row {first_seen[pair]})",
                )
            )
            continue
        first_seen[pair] = int(rows[k])
        out[pair] = mins[k]
    if not problems:
        seen = np.zeros(out.shape, dtype=bool)
        if first_seen:
            idx = np.array(list(first_seen))
            seen[idx[:, 0], idx[:, 1]] = True
        missing = np.argwhere(~seen)
        if len(missing):
            areas = list(area_key)
            sites = list(site_key)
            pairs = [f"({areas[i]}, {sites[j]})" for i, j in missing[: _MAX_LISTED + 1]]
            problems.append(
                Problem(
                    file,
                    None,
                    None,
                    f"{len(missing)} area-site pair(s) missing, e.g. "
                    + _sample(pairs, total=len(missing)),
                )
            )
    return out, problems


def _wide_form(
    df: pd.DataFrame, file: str, first_row: int, area_key: dict, site_key: dict
) -> tuple[np.ndarray, list[Problem]]:
    problems: list[Problem] = []
    header_row = 1 if first_row == 2 else None
    code_col = df.columns[0]
    site_cols = list(df.columns[1:])
    col_j: dict[str, int] = {}
    for c in site_cols:
        key = _as_key(c)
        if key not in site_key:
            problems.append(Problem(file, header_row, c, f"unknown site id '{key}' in the header"))
        elif site_key[key] in col_j.values():
            problems.append(Problem(file, header_row, c, f"duplicate column for site '{key}'"))
        else:
            col_j[c] = site_key[key]
    missing_sites = [s for s, j in site_key.items() if j not in col_j.values()]
    if missing_sites:
        problems.append(
            Problem(file, header_row, None, f"no column for site(s) {_sample(missing_sites)}")
        )
    out = np.full((len(area_key), len(site_key)), np.nan)
    seen_row: dict[int, int] = {}
    codes = [_as_key(v) for v in df[code_col].to_numpy(object)]
    parsed = {c: _parse_minutes(df[c]) for c in col_j}
    for k, code in enumerate(codes):
        row = k + first_row
        i = area_key.get(code, -1)
        if i < 0:
            problems.append(Problem(file, row, code_col, f"unknown area code '{code}'"))
        elif i in seen_row:
            problems.append(
                Problem(
                    file, row, code_col, f"duplicate area '{code}' (first on row {seen_row[i]})"
                )
            )
            i = -1
        else:
            seen_row[i] = row
        for c, j in col_j.items():
            mins, msg = parsed[c]
            if msg[k]:
                problems.append(Problem(file, row, c, f"{msg[k]} (got '{df[c].iat[k]}')"))
            elif i >= 0:
                out[i, j] = mins[k]
    missing_areas = [a for a, i in area_key.items() if i not in seen_row]
    if missing_areas:
        problems.append(
            Problem(
                file,
                None,
                code_col,
                f"{len(missing_areas)} area(s) have no row, e.g. {_sample(missing_areas)}",
            )
        )
    return out, problems
