"""Session state and the small helpers the pages share.

The app keeps no state of its own between requests: each browser session holds its
scenario (``scenario_to_dict``) and its latest optimisation result in ``dcc.Store``
components, and every callback rebuilds what it needs from them. The functions here
translate between those dicts and :mod:`pathways` objects, build scenarios for any
ICB, turn footprints into map geometry, and turn the sites table into sites.

Expensive look-ups of bundled data (an ICB's boundaries, its map geometry) are
memoised with ``functools.lru_cache``: they depend only on their arguments, and the
cached values are never modified (callers receive copies of tables).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from pathways import geography
from pathways._paths import data_dir
from pathways.errors import InfeasibleError, InputError, Problem
from pathways.plan import Plan, plan_from_dict
from pathways.scenario import (
    CAPACITY_FIELD,
    SERVICES,
    Footprint,
    Scenario,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- settings

ENV_STORE_URL = "PATHWAYS_STORE_URL"
ENV_CACHE_DIR = "PATHWAYS_CACHE_DIR"
ENV_TILE_URL = "PATHWAYS_TILE_URL"
DEFAULT_CACHE_DIR = Path("~/.pathways/app-cache")
CONFIG_KEY = "PATHWAYS_APP"

DEMO_ICB = "E54000053"
DEMO_SCENARIO_FILE = "scenarios/sussex.yaml"

SERVICE_LABELS: dict[str, str] = {
    "inpatient": "inpatient",
    "crisis_house": "crisis house",
    "mobile_team": "mobile team",
    "place_of_safety": "place of safety",
}
LOCK_OPTIONS: dict[str, tuple[bool, bool]] = {
    # label: (can_shrink, can_close)
    "free to change": (True, True),
    "keep open (may shrink)": (True, False),
    "may close, not shrink": (False, True),
    "locked": (False, False),
}
SITE_TABLE = "sites table"
#: Background jobs and the shell stores each uses: ``app-<job>-<part>``.
JOBS = ("optimise", "frontier")
JOB_PARTS = ("request", "cancel", "progress", "running", "status")
ORIG_ID = "orig_id"


@dataclass(frozen=True)
class AppConfig:
    """Where the app keeps saved work and background jobs, and the optional map tiles."""

    store_url: str | None
    cache_dir: Path
    tile_url: str | None

    @property
    def upload_dir(self) -> Path:
        return self.cache_dir / "uploads"

    @property
    def callback_dir(self) -> Path:
        return self.cache_dir / "callbacks"


def resolve_config(
    store_url: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
    tile_url: str | None = None,
) -> AppConfig:  # fmt: skip
    """Arguments first, then the environment (``PATHWAYS_STORE_URL``, ``PATHWAYS_CACHE_DIR``,
    ``PATHWAYS_TILE_URL``), then defaults."""
    cache = cache_dir or os.environ.get(ENV_CACHE_DIR) or DEFAULT_CACHE_DIR
    return AppConfig(
        store_url=store_url or os.environ.get(ENV_STORE_URL) or None,
        cache_dir=Path(cache).expanduser().resolve(),
        tile_url=tile_url or os.environ.get(ENV_TILE_URL) or None,
    )


def current_config() -> AppConfig:
    """The running app's configuration (the environment's outside a request)."""
    try:
        import flask

        if flask.has_app_context() and CONFIG_KEY in flask.current_app.config:
            return flask.current_app.config[CONFIG_KEY]
    except ImportError:  # pragma: no cover - flask comes with dash
        pass
    return resolve_config()


def open_store(config: AppConfig | None = None):
    """A :class:`pathways.store.RunStore` at the configured URL."""
    from pathways.store import RunStore

    return RunStore((config or current_config()).store_url)


# --------------------------------------------------------------------------- errors


def error_lines(err: BaseException) -> tuple[str, list[str]]:
    """A headline and detail lines for an error, in the user's terms."""
    if isinstance(err, InputError):
        n = len(err.problems)
        head = (
            "There is a problem with the input."
            if n == 1
            else f"There are {n} problems with the input."
        )
        return head, [str(p) for p in err.problems[:50]]
    if isinstance(err, InfeasibleError):
        return "No plan meets all the constraints together.", list(err.reasons)
    return (
        "Something went wrong. The details were logged for the support team.",
        [f"{type(err).__name__}: {err}"[:300]],
    )


def problem_rows(err: InputError) -> list[dict[str, Any]]:
    """Problems as table rows (file, row, field, message)."""
    return [
        {
            "file": p.file,
            "row": "" if p.row is None else p.row,
            "field": p.field or "",
            "message": p.message,
        }
        for p in err.problems
    ]


# --------------------------------------------------------------------------- scenarios


@functools.lru_cache(maxsize=1)
def _demo_cached(path: str) -> Scenario:
    # as the session store holds it: without the folder it was read from
    return scenario_from_dict(scenario_to_dict(load_scenario(path)), file=path)


def demo_scenario() -> Scenario:
    """The bundled NHS Sussex demo scenario."""
    return _demo_cached(str(data_dir() / DEMO_SCENARIO_FILE))


def icb_options() -> list[dict[str, str]]:
    """Dropdown options for the 42 ICBs, labelled with name, code and population."""
    icbs = geography.list_icbs().sort_values(geography.ICB_SHORT)
    return [
        {
            "label": f"{r.icb_short} ({r.icb_cd})",
            "value": r.icb_cd,
            "search": f"{r.icb_short} {r.icb_nm} {r.icb_cd}",
        }
        for r in icbs.itertuples()
    ]


def scenario_for_icb(code_or_name: str) -> Scenario:
    """A starting scenario for any ICB: the bundled Sussex demo, or one built the same way.

    Other ICBs use :func:`pathways.batch.make_icb_scenario`: existing sites from the 2014
    NHS mental health hospital list with *assumed* capacities (20 adult acute beds per
    100,000 split by catchment, mobile teams, place-of-safety suites, crisis-line staff
    scaled from Sussex) and illustrative candidate sites at population centres.
    """
    from pathways.batch import make_icb_scenario

    code = geography.resolve_icb(code_or_name)
    if code == DEMO_ICB:
        return demo_scenario()
    return make_icb_scenario(code)


def scenario_to_store(scenario: Scenario) -> dict[str, Any]:
    return scenario_to_dict(scenario)


def scenario_from_store(data: Mapping[str, Any] | None) -> Scenario:
    """The session's scenario (the Sussex demo when the session has none)."""
    if not data:
        return demo_scenario()
    return scenario_from_dict(data, file="scenario")


def with_sections(scenario: Scenario, **sections: Any) -> Scenario:
    """A copy with whole top-level sections replaced, re-validated."""
    data = scenario_to_dict(scenario)
    data.update(sections)
    return scenario_from_dict(data, file="scenario")


def defaults_scenario(scenario: Scenario) -> Scenario:
    """The same footprint, sites, budget and constraints with every parameter at its default."""
    data = scenario_to_dict(scenario)
    for key in ("demand", "pathway", "queues", "costs"):
        data.pop(key, None)
    data["objective"] = {**data.get("objective", {}), "weights": {}}
    return scenario_from_dict(data, file="scenario")


# --------------------------------------------------------------------------- results


def result_is_fresh(result: Mapping[str, Any] | None, scenario: Scenario) -> bool:
    """Whether a stored optimisation result was made for this exact scenario."""
    return bool(result) and result.get("scenario_fingerprint") == scenario.fingerprint()


def plan_from_result(result: Mapping[str, Any] | None) -> Plan | None:
    if not result or not result.get("plan"):
        return None
    return plan_from_dict(result["plan"], file="plan")


def result_to_store(scenario: Scenario, outcome: Any, seconds: float) -> dict[str, Any]:
    """What the session keeps of an :class:`pathways.optimise.OptimiseResult`."""
    plan = outcome.plan
    goals = outcome.goals
    return {
        "scenario_fingerprint": scenario.fingerprint(),
        "scenario_name": scenario.name,
        "plan": plan.model_dump(mode="json"),
        "baselines": {k: p.model_dump(mode="json") for k, p in outcome.baselines.items()},
        "cards": {k: c.to_dict() for k, c in outcome.cards.items()},
        "objectives": {k: float(v) for k, v in outcome.objectives.items()},
        "budget_gbp": float(getattr(goals, "budget_gbp", float("nan")) or 0.0),
        "mode": str(getattr(goals, "mode", "")),
        "seconds": float(seconds),
    }


# --------------------------------------------------------------------------- geography


@functools.lru_cache(maxsize=8)
def _areas_cached(footprint_json: str) -> gpd.GeoDataFrame:
    fp = Footprint.model_validate_json(footprint_json)
    if fp.icb is not None:
        areas = geography.load_footprint(fp.icb)
    else:
        areas = geography.load_areas(fp.areas_file)
    if fp.aggregate_to == "msoa":
        areas = geography.aggregate_to_msoa(areas)
    return areas


def footprint_areas(scenario: Scenario) -> gpd.GeoDataFrame:
    """The scenario's small areas (EPSG:27700), a copy the caller may change."""
    return _areas_cached(scenario.footprint.model_dump_json()).copy()


def footprint_label(scenario: Scenario) -> str:
    fp = scenario.footprint
    if fp.icb is not None:
        try:
            code = geography.resolve_icb(fp.icb)
            row = geography.list_icbs().set_index(geography.ICB_CD).loc[code]
            return f"{row[geography.ICB_SHORT]} ({code})"
        except (InputError, KeyError):
            return str(fp.icb)
    return f"uploaded areas ({Path(fp.areas_file or '').name})"


@dataclass(frozen=True)
class MapGeometry:
    """Areas ready for a web map: GeoJSON polygons (or points) in WGS84 and the view box."""

    kind: str  # "polygons" or "points"
    ids: tuple[str, ...]
    geojson: dict[str, Any] | None
    lon: tuple[float, ...]
    lat: tuple[float, ...]
    bounds: tuple[float, float, float, float]  # west, south, east, north


#: Decimal places kept in map coordinates: 4 dp is about 7-11 m, finer than the
#: generalised boundaries, and halves the page payload.
MAP_DECIMALS = 4
MAP_SIMPLIFY_M = 25.0


def map_geometry(areas: gpd.GeoDataFrame) -> MapGeometry:
    """Map-ready geometry for an area table (simplified, WGS84, rounded)."""
    if len(areas) == 0:
        return MapGeometry("points", (), None, (), (), (-1.0, 50.5, 0.5, 51.5))
    geoms = areas.geometry
    if geoms.crs is not None and geoms.crs.to_epsg() != 4326:
        is_poly = geoms.geom_type.isin(["Polygon", "MultiPolygon"])
        geoms = geoms.where(~is_poly, geoms.simplify(MAP_SIMPLIFY_M, preserve_topology=True))
        geoms = geoms.to_crs(geography.WGS84)
    rounded = shapely.transform(geoms.to_numpy(), lambda c: np.round(c, MAP_DECIMALS))
    ids = tuple(str(i) for i in areas.index)
    west, south, east, north = (float(v) for v in shapely.total_bounds(rounded))
    pts = shapely.point_on_surface(rounded)
    lon = tuple(np.round(shapely.get_x(pts), 5).tolist())
    lat = tuple(np.round(shapely.get_y(pts), 5).tolist())
    if np.all(shapely.get_type_id(rounded) == 0):
        return MapGeometry("points", ids, None, lon, lat, (west, south, east, north))
    features = [
        {"type": "Feature", "id": i, "properties": {}, "geometry": shapely.geometry.mapping(g)}
        for i, g in zip(ids, rounded, strict=True)
    ]
    return MapGeometry(
        "polygons", ids, {"type": "FeatureCollection", "features": features}, lon, lat,
        (west, south, east, north),
    )  # fmt: skip


@functools.lru_cache(maxsize=8)
def _geometry_cached(footprint_json: str) -> MapGeometry:
    return map_geometry(_areas_cached(footprint_json))


def footprint_geometry(scenario: Scenario) -> MapGeometry:
    """Map geometry of the scenario's footprint (memoised by footprint)."""
    return _geometry_cached(scenario.footprint.model_dump_json())


def area_table(scenario: Scenario) -> pd.DataFrame:
    """Per-area facts for maps and summaries: name, population, deprivation, demand."""
    from pathways.demand import episodes_per_year
    from pathways.instance import standardise_areas

    areas = footprint_areas(scenario)
    std = standardise_areas(areas)
    episodes = episodes_per_year(std, scenario.demand)
    pop = std["pop_total"].to_numpy(float)
    return pd.DataFrame(
        {
            "name": std["name"].astype(str),
            "population": pop,
            "imd_decile": std["imd_decile"].astype(int),
            "imd_quintile": std["imd_quintile"].astype(int),
            "rural": std["rural"].astype(bool),
            "x": std["x"].astype(float),
            "y": std["y"].astype(float),
            "episodes_per_year": episodes,
            "demand_per_100k": np.divide(
                episodes * 1e5, pop, out=np.zeros_like(episodes), where=pop > 0
            ),
        },
        index=std.index,
    )


def area_summary(table: pd.DataFrame) -> dict[str, float]:
    """Headline facts of a footprint: population, areas, deprivation and rural mix."""
    pop = table["population"]
    total = float(pop.sum())
    share = (lambda m: float(pop[m].sum() / total)) if total > 0 else (lambda m: 0.0)
    out = {
        "population": total,
        "areas": float(len(table)),
        "rural_share": share(table["rural"]),
        "episodes_per_year": float(table["episodes_per_year"].sum()),
    }
    for q in range(1, 6):
        out[f"imd_q{q}_share"] = share(table["imd_quintile"] == q)
    return out


# --------------------------------------------------------------------------- coordinates


@functools.lru_cache(maxsize=2)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


def bng_to_lonlat(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    lon, lat = _transformer(geography.BNG, geography.WGS84).transform(
        np.asarray(x, float), np.asarray(y, float)
    )
    return np.asarray(lon), np.asarray(lat)


def lonlat_to_bng(lon: Sequence[float], lat: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _transformer(geography.WGS84, geography.BNG).transform(
        np.asarray(lon, float), np.asarray(lat, float)
    )
    return np.asarray(x), np.asarray(y)


# --------------------------------------------------------------------------- sites


def sites_frame(scenario: Scenario, plan: Plan | None = None) -> pd.DataFrame:
    """Sites with WGS84 position and capacity per service (the plan's, if given)."""
    cols = ["site_id", "name", "status", "services", "lon", "lat", "x_m", "y_m",
            *SERVICES, *(f"{s}_now" for s in SERVICES)]  # fmt: skip
    if not scenario.sites:
        return pd.DataFrame(columns=cols)
    lon, lat = bng_to_lonlat([s.x_m for s in scenario.sites], [s.y_m for s in scenario.sites])
    rows = []
    for k, s in enumerate(scenario.sites):
        cap = plan.capacity(s.site_id) if plan is not None else s.capacity
        rows.append({
            "site_id": s.site_id, "name": s.name, "status": s.status,
            "services": tuple(s.services), "lon": float(lon[k]), "lat": float(lat[k]),
            "x_m": s.x_m, "y_m": s.y_m,
            **{svc: cap.of(svc) for svc in SERVICES},
            **{f"{svc}_now": s.capacity.of(svc) for svc in SERVICES},
        })  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def lock_label(can_shrink: bool, can_close: bool) -> str:
    for label, flags in LOCK_OPTIONS.items():
        if flags == (bool(can_shrink), bool(can_close)):
            return label
    return "free to change"  # pragma: no cover - the four combinations are all listed


def services_text(services: Iterable[str]) -> str:
    return ", ".join(SERVICE_LABELS[s] for s in SERVICES if s in set(services))


def site_rows(scenario: Scenario) -> list[dict[str, Any]]:
    """The sites table shown on the Services page."""
    table = sites_frame(scenario)
    rows = []
    for s, (_, r) in zip(scenario.sites, table.iterrows(), strict=True):
        rows.append({
            ORIG_ID: s.site_id, "site_id": s.site_id, "name": s.name, "status": s.status,
            "services": services_text(s.services),
            **{CAPACITY_FIELD[svc]: s.capacity.of(svc) for svc in SERVICES},
            "lock": lock_label(s.can_shrink, s.can_close),
            "lat": round(float(r["lat"]), 5), "lon": round(float(r["lon"]), 5),
        })  # fmt: skip
    return rows


_SERVICE_WORDS = {re.sub(r"[^a-z]", "", v): k for k, v in SERVICE_LABELS.items()}
_SERVICE_WORDS.update({re.sub(r"[^a-z]", "", k): k for k in SERVICES})
_SERVICE_WORDS.update({"beds": "inpatient", "ward": "inpatient", "mobile": "mobile_team",
                       "mobileteams": "mobile_team", "crisishouses": "crisis_house",
                       "pos": "place_of_safety", "s136": "place_of_safety"})  # fmt: skip


def parse_services(text: Any) -> tuple[list[str], list[str]]:
    """Service keys from free text (``"inpatient; crisis house"``) and the unknown words."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return [], []
    found, unknown = [], []
    for item in re.split(r"[;,/+]|\band\b", str(text)):
        key = re.sub(r"[^a-z0-9]", "", item.lower())
        if not key:
            continue
        if key in _SERVICE_WORDS:
            found.append(_SERVICE_WORDS[key])
        else:
            unknown.append(item.strip())
    return [s for s in SERVICES if s in found], unknown


def _whole(value: Any) -> int | None:
    """A whole number >= 0 from a cell (blank = 0); ``None`` when it is not one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or v < 0 or abs(v - round(v)) > 1e-9:
        return None
    return int(round(v))


def _number(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def rows_to_scenario(rows: Sequence[Mapping[str, Any]], scenario: Scenario) -> Scenario:
    """Apply the edited sites table to a scenario (re-validated).

    Raises
    ------
    InputError
        Every problem found, naming the table row (1 = first row) and the column.
    """
    problems: list[Problem] = []
    originals = {s.site_id: s for s in scenario.sites}
    out = []
    for i, row in enumerate(rows, start=1):

        def bad(field: str, message: str, i: int = i) -> None:
            problems.append(Problem(SITE_TABLE, i, field, message))

        base = originals.get(str(row.get(ORIG_ID) or ""))
        data = base.model_dump(mode="json") if base is not None else {}
        site_id = str(row.get("site_id") or "").strip()
        name = str(row.get("name") or "").strip()
        if not site_id:
            bad("site_id", "the site needs an id")
        if not name:
            bad("name", "the site needs a name")
        status = str(row.get("status") or "candidate").strip().lower()
        if status not in ("existing", "candidate"):
            bad("status", f"'{row.get('status')}' is not 'existing' or 'candidate'")
        services, unknown = parse_services(row.get("services"))
        if base is not None and set(services) == set(base.services):
            services = list(base.services)
        for word in unknown:
            bad("services", f"unknown service '{word}'; use inpatient, crisis house, mobile team "
                            "or place of safety, separated by commas")  # fmt: skip
        capacity = {}
        for svc in SERVICES:
            col = CAPACITY_FIELD[svc]
            v = _whole(row.get(col))
            if v is None:
                bad(col, f"'{row.get(col)}' is not a whole number of 0 or more")
                v = 0
            if v > 0 and svc not in services:
                bad(col, f"capacity {v} given but '{SERVICE_LABELS[svc]}' is not in the site's "
                         "services")  # fmt: skip
            capacity[col] = v
        lock = str(row.get("lock") or "free to change")
        if lock not in LOCK_OPTIONS:
            bad("lock", f"'{lock}' is not one of {', '.join(LOCK_OPTIONS)}")
            lock = "free to change"
        lat, lon = _number(row.get("lat")), _number(row.get("lon"))
        if lat is None or not 49.0 <= lat <= 61.0:
            bad("lat", f"'{row.get('lat')}' is not a latitude in Great Britain (49 to 61)")
        if lon is None or not -9.0 <= lon <= 3.0:
            bad("lon", f"'{row.get('lon')}' is not a longitude in Great Britain (-9 to 3)")
        if lat is None or lon is None or not (49 <= lat <= 61 and -9 <= lon <= 3):
            continue
        x, y = lonlat_to_bng([lon], [lat])
        moved = base is None or abs(base.x_m - x[0]) > 2 or abs(base.y_m - y[0]) > 2
        can_shrink, can_close = LOCK_OPTIONS[lock]
        data.update({
            "site_id": site_id or f"row{i}", "name": name or site_id or f"row {i}",
            "status": status if status in ("existing", "candidate") else "candidate",
            "services": services, "capacity": capacity,
            "x_m": round(float(x[0]), 1) if moved else base.x_m,
            "y_m": round(float(y[0]), 1) if moved else base.y_m,
            "can_shrink": can_shrink, "can_close": can_close,
        })  # fmt: skip
        out.append(data)
    if problems:
        raise InputError(problems)
    payload = scenario_to_dict(scenario)
    payload["sites"] = out
    try:
        return scenario_from_dict(payload, file=SITE_TABLE)
    except InputError as err:
        raise InputError([_site_problem(p) for p in err.problems]) from None


def _site_problem(p: Problem) -> Problem:
    """Re-express ``sites[3].capacity`` as row 4 of the sites table."""
    m = re.match(r"sites\[(\d+)\]\.?(.*)", p.field or "")
    if not m:
        return Problem(SITE_TABLE, p.row, p.field, p.message)
    return Problem(SITE_TABLE, int(m.group(1)) + 1, m.group(2) or "site", p.message)


def unique_site_id(taken: Iterable[str], prefix: str = "NEW") -> str:
    taken = set(taken)
    k = 1
    while f"{prefix}{k:02d}" in taken:
        k += 1
    return f"{prefix}{k:02d}"


def new_site_row(
    rows: Sequence[Mapping[str, Any]], lon: float, lat: float, name: str
) -> dict[str, Any]:
    """A candidate row (crisis house and mobile-team base, no capacity yet) at a position."""
    return {
        ORIG_ID: "", "site_id": unique_site_id(str(r.get("site_id")) for r in rows),
        "name": name, "status": "candidate", "services": services_text(["crisis_house", "mobile_team"]),
        **{CAPACITY_FIELD[s]: 0 for s in SERVICES}, "lock": "free to change",
        "lat": round(float(lat), 5), "lon": round(float(lon), 5),
    }  # fmt: skip


def uploaded_site_rows(sites: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """Rows for the sites table from :func:`pathways.geography.load_sites` output."""
    if len(sites) == 0:
        return []
    lon, lat = bng_to_lonlat(sites[geography.X], sites[geography.Y])
    rows = []
    for k, (sid, s) in enumerate(sites.iterrows()):
        services = [v for v in str(s[geography.SERVICES] or "").split(";") if v]
        rows.append({
            ORIG_ID: "", "site_id": str(sid), "name": str(s[geography.SITE_NAME]),
            "status": str(s[geography.STATUS]), "services": services_text(services),
            **{col: (0 if pd.isna(s[col]) else int(s[col])) for col in CAPACITY_FIELD.values()},
            "lock": "keep open (may shrink)" if s[geography.STATUS] == "existing" else "free to change",
            "lat": round(float(lat[k]), 5), "lon": round(float(lon[k]), 5),
        })  # fmt: skip
    return rows


def merge_rows(
    rows: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Rows with ``new`` added; a new row replaces an existing row with the same site id."""
    by_id = {str(r["site_id"]): dict(r) for r in new}
    out = []
    for r in rows:
        sid = str(r.get("site_id"))
        if sid in by_id:
            out.append({**by_id.pop(sid), ORIG_ID: r.get(ORIG_ID, "")})
        else:
            out.append(dict(r))
    return out + list(by_id.values())


# --------------------------------------------------------------------------- uploads

UPLOAD_SUFFIXES = (".csv", ".geojson", ".json", ".gpkg", ".zip")


def save_upload(contents: str, filename: str, folder: Path) -> Path:
    """Write a ``dcc.Upload`` payload to ``folder/<hash>/<filename>`` and return the path."""
    name = Path(filename or "upload").name
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise InputError(Problem(name, None, None, f"unsupported file type '{suffix or '(none)'}'; "
                                 f"expected one of {', '.join(UPLOAD_SUFFIXES)}"))  # fmt: skip
    try:
        _, b64 = contents.split(",", 1)
        raw = base64.b64decode(b64)
    except (ValueError, AttributeError):
        raise InputError(Problem(name, None, None, "the file could not be read")) from None
    digest = hashlib.sha256(raw).hexdigest()[:16]
    target = folder / digest / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        target.write_bytes(raw)
    return target


def store_areas(areas: gpd.GeoDataFrame, folder: Path, source: str) -> Path:
    """Keep a validated, complete copy of uploaded areas as GeoPackage (for the scenario)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = areas.reset_index().rename(columns={"area_name": "name", "pop_total": "population"})
    keep = ["area_code", "name", "population", "imd_decile", "rural", "geometry",
            *(c for c in geography.POP_AGE_COLUMNS if c in out.columns)]  # fmt: skip
    out = gpd.GeoDataFrame(out[keep], geometry="geometry", crs=areas.crs)
    digest = hashlib.sha256(out.to_json().encode()).hexdigest()[:16]
    path = folder / f"{Path(source).stem}-{digest}.gpkg"
    if not path.exists():
        out.to_file(path, driver="GPKG", layer="areas")
    return path
