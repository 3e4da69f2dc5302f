"""Turn a scenario into the arrays the model works on (areas, sites, travel, demand).

``prepare`` reads the bundled data (or the user's files) once per scenario and
caches the result by the scenario's fingerprint, so repeated ``evaluate`` calls
on variants of the same footprint cost only arithmetic.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pathways import demand, geography, travel
from pathways.errors import InputError, Problem
from pathways.pathway import Coefficients, coefficients
from pathways.scenario import SERVICES, Footprint, Scenario

log = logging.getLogger(__name__)

AREA_COLUMNS = (
    "name",
    "pop_total",
    "pop_0_15",
    "pop_16_59",
    "pop_60_plus",
    "imd_decile",
    "imd_quintile",
    "rural",
    "x",
    "y",
)


@dataclass(frozen=True, eq=False)
class Instance:
    """A scenario resolved against geography: everything ``evaluate`` and ``optimise`` need."""

    scenario: Scenario
    areas: pd.DataFrame  # index: area_code
    site_ids: tuple[str, ...]
    site_xy: np.ndarray  # (m, 2) EPSG:27700
    travel_mins: np.ndarray  # (n, m)
    episodes: np.ndarray  # (n,) per year
    coeffs: Coefficients
    extra: dict = field(default_factory=dict)

    @property
    def n_areas(self) -> int:
        return len(self.areas)

    @property
    def population(self) -> float:
        return float(self.areas["pop_total"].sum())

    @property
    def crisis_house_referrals(self) -> np.ndarray:
        return self.episodes * self.coeffs.to_crisis_house

    @property
    def mobile_episodes(self) -> np.ndarray:
        return self.episodes * self.coeffs.to_mobile

    @property
    def quintile(self) -> np.ndarray:
        return self.areas["imd_quintile"].to_numpy(int)

    @property
    def rural(self) -> np.ndarray:
        return self.areas["rural"].to_numpy(bool)

    def hosts(self, service: str) -> np.ndarray:
        """Boolean mask over sites that may host ``service``."""
        return np.array(
            [service in self.scenario.site(s).services for s in self.site_ids], dtype=bool
        )

    def with_scenario(self, scenario: Scenario) -> Instance:
        """Same geography, new parameters (demand re-derived). Sites must be the same."""
        if (
            tuple(s.site_id for s in scenario.sites) != self.site_ids
            or scenario.footprint != self.scenario.footprint
        ):
            return prepare(scenario)
        return Instance(
            scenario=scenario,
            areas=self.areas,
            site_ids=self.site_ids,
            site_xy=self.site_xy,
            travel_mins=self.travel_mins,
            episodes=demand.episodes_per_year(self.areas, scenario.demand),
            coeffs=coefficients(scenario.pathway),
        )


def standardise_areas(gdf: pd.DataFrame) -> pd.DataFrame:
    """Plain DataFrame indexed by ``area_code`` with the columns the model uses."""
    df = pd.DataFrame(gdf).copy()
    if "geometry" in df.columns:
        df = df.drop(columns="geometry")
    if df.index.name != "area_code":
        for cand in ("area_code", "lsoa11cd", "msoa11cd"):
            if cand in df.columns:
                df = df.set_index(cand)
                break
        df.index.name = "area_code"
    rename = {"centroid_x": "x", "centroid_y": "y", "area_name": "name"}
    for src, dst in rename.items():
        if src in df.columns and dst not in df.columns:
            df = df.rename(columns={src: dst})
    if "name" not in df.columns:
        df["name"] = df.index.astype(str)
    if "rural" not in df.columns:
        df["rural"] = False
    if "imd_quintile" not in df.columns:
        df["imd_quintile"] = (df["imd_decile"].astype(int) + 1) // 2
    for band in ("pop_0_15", "pop_16_59", "pop_60_plus"):
        if band not in df.columns:
            df[band] = np.nan
    df["rural"] = df["rural"].fillna(False).astype(bool)
    df.index = df.index.astype(str)
    return df[list(AREA_COLUMNS)]


def _resolve(base_dir: str | None, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p


def load_areas_for(fp: Footprint, base_dir: str | None) -> pd.DataFrame:
    """The footprint's areas as a plain table (see :func:`standardise_areas`)."""
    if fp.icb is not None:
        gdf = geography.load_footprint(fp.icb)
    else:
        gdf = geography.load_areas(_resolve(base_dir, fp.areas_file))
    if fp.aggregate_to == "msoa":
        gdf = geography.aggregate_to_msoa(gdf)
    return standardise_areas(gdf)


def prepare(scenario: Scenario) -> Instance:
    """Resolve a scenario's footprint, sites and travel times (cached by content)."""
    return _prepare_cached(scenario)


@functools.lru_cache(maxsize=16)
def _geometry_cached(
    footprint_json: str, base_dir: str, sites: tuple[tuple[str, float, float], ...]
):
    fp = Footprint.model_validate_json(footprint_json)
    areas = load_areas_for(fp, base_dir or None)
    site_ids = tuple(s[0] for s in sites)
    site_xy = np.array([[s[1], s[2]] for s in sites], dtype=float).reshape(-1, 2)
    if fp.travel_matrix_file:
        path = _resolve(base_dir or None, fp.travel_matrix_file)
        mat = travel.load_matrix(path, list(areas.index), list(site_ids))
        mins = mat.loc[areas.index, list(site_ids)].to_numpy(float)
    else:
        model = travel.TravelModel.load()
        codes = areas.index.to_numpy() if fp.icb is not None and fp.aggregate_to == "lsoa" else None
        mins = model.minutes(areas[["x", "y"]].to_numpy(float), site_xy, origin_codes=codes)
    mins = np.array(mins, dtype=float)
    for arr in (mins, site_xy):
        arr.setflags(write=False)
    return areas, site_ids, site_xy, mins


def _prepare_cached(scenario: Scenario) -> Instance:
    sites = tuple((s.site_id, float(s.x_m), float(s.y_m)) for s in scenario.sites)
    if not sites:
        raise InputError(Problem("scenario", None, "sites", "the scenario lists no sites"))
    try:
        areas, site_ids, site_xy, mins = _geometry_cached(
            scenario.footprint.model_dump_json(), scenario.base_dir or "", sites
        )
    except FileNotFoundError as err:
        raise InputError(
            Problem(str(err.filename or "data"), None, None, "file not found")
        ) from None
    if not np.isfinite(mins).all():
        raise InputError(
            Problem("travel", None, None, "travel matrix has missing or infinite values")
        )
    return Instance(
        scenario=scenario,
        areas=areas,
        site_ids=site_ids,
        site_xy=site_xy,
        travel_mins=mins,
        episodes=demand.episodes_per_year(areas, scenario.demand),
        coeffs=coefficients(scenario.pathway),
    )


def capacity_arrays(inst: Instance, plan) -> dict[str, np.ndarray]:
    """Capacity per site (aligned with ``inst.site_ids``) for each service."""
    out = {svc: np.zeros(len(inst.site_ids)) for svc in SERVICES}
    index = {s: i for i, s in enumerate(inst.site_ids)}
    for sp in plan.sites:
        if sp.site_id not in index:
            raise InputError(Problem("plan", None, "sites", f"unknown site '{sp.site_id}'"))
        for svc in SERVICES:
            out[svc][index[sp.site_id]] = sp.capacity.of(svc)
    return out
