"""Crisis demand per small area: episodes, calls and section 136 detentions per year.

episodes_i = base_rate / 1e5 x weighted_pop_i x deprivation_i x growth, where

* weighted_pop_i = k (r0 pop_0_15 + pop_16_59 + r60 pop_60_plus), with k chosen so that
  England's weighted population equals its total population (so ``base_rate`` is per
  100k people at England's age mix);
* deprivation_i = exp(beta (5.5 - decile_i)) / mean_d exp(beta (5.5 - d)), beta = ln(ratio)/9,
  so decile 1 has ``ratio`` times the rate of decile 10 and the mean over deciles is 1.

See docs/calibration.md for the derivation of the default base rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pathways.errors import InputError, Problem
from pathways.scenario import DemandParams, QueueParams

# England, mid-2015 (IoD2019 file 6, sum over the 32,844 English LSOAs); checked against
# the bundled table by tests/unit/test_demand.py.
ENGLAND_POP_0_15 = 10_405_050
ENGLAND_POP_16_59 = 31_710_315
ENGLAND_POP_60_PLUS = 12_612_839
ENGLAND_POP = 54_728_204  # total column; equals the sum of the three bands

MAX_FOOTPRINT_POPULATION = 100_000_000
"""Largest population of one footprint (England is about 57 M): beyond it a population
column holds a mistake (1e300 would overflow the demand arithmetic)."""


def check_population(
    population: float | np.ndarray, what: str = "areas", field: str = "pop_total"
) -> None:
    """Refuse populations that are negative, not finite or beyond any real footprint."""
    pop = np.asarray(population, dtype=float)
    per_area = pop.ndim > 0
    if pop.size == 0:
        return
    bad = ~np.isfinite(pop) | (pop < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.ravel())[0]) + 1 if per_area else None
        raise InputError(
            Problem(what, row, field, f"must be a finite number >= 0, got {pop[bad].flat[0]}")
        )
    total = float(pop.sum())
    if total > MAX_FOOTPRINT_POPULATION:
        raise InputError(
            Problem(
                what,
                None,
                field,
                f"the footprint's population of {total:,.0f} is more than the "
                f"{MAX_FOOTPRINT_POPULATION:,} allowed (England has about 57 million people)",
            )
        )


def age_weight_scale(params: DemandParams) -> float:
    """k such that England's age-weighted population equals its total population."""
    weighted = (
        params.relative_rate_0_15 * ENGLAND_POP_0_15
        + ENGLAND_POP_16_59
        + params.relative_rate_60_plus * ENGLAND_POP_60_PLUS
    )
    return ENGLAND_POP / weighted


def deprivation_multiplier(decile: np.ndarray | pd.Series, ratio: float) -> np.ndarray:
    """Relative episode rate by IMD decile (1 = most deprived); mean over deciles is 1."""
    beta = np.log(ratio) / 9.0
    d = np.asarray(decile, dtype=float)
    norm = np.mean(np.exp(beta * (5.5 - np.arange(1, 11))))
    return np.exp(beta * (5.5 - d)) / norm


def weighted_population(areas: pd.DataFrame, params: DemandParams) -> np.ndarray:
    """Age-weighted population of each area (falls back to total population if bands are missing)."""
    bands = ("pop_0_15", "pop_16_59", "pop_60_plus")
    if "pop_total" in areas.columns:
        check_population(areas["pop_total"].to_numpy(float))
    if all(b in areas.columns for b in bands) and areas[list(bands)].notna().all().all():
        for b in bands:
            check_population(areas[b].to_numpy(float), field=b)
        raw = (
            params.relative_rate_0_15 * areas["pop_0_15"].to_numpy(float)
            + areas["pop_16_59"].to_numpy(float)
            + params.relative_rate_60_plus * areas["pop_60_plus"].to_numpy(float)
        )
        return raw * age_weight_scale(params)
    pop = areas["pop_total"].to_numpy(float)
    check_population(pop)
    return pop


def episodes_per_year(areas: pd.DataFrame, params: DemandParams) -> np.ndarray:
    """Expected in-person crisis episodes per area per year."""
    return (
        params.episodes_per_100k_per_year
        / 1e5
        * weighted_population(areas, params)
        * deprivation_multiplier(areas["imd_decile"], params.deprivation_ratio)
        * params.growth_factor
    )


def calls_per_year(population: float, params: DemandParams) -> float:
    """Crisis-line calls per year for a footprint."""
    check_population(population)
    return params.calls_per_100k_per_year / 1e5 * population * params.growth_factor


DAYS_PER_CYCLE = 7
HOURS_PER_WEEK = 168


def week_profile(params: DemandParams) -> np.ndarray:
    """Share of a week's calls and call-outs in each of its 168 hours (Monday 00:00 first; sums to 1)."""
    return np.outer(np.asarray(params.weekday_profile), np.asarray(params.hourly_profile)).ravel()


def hour_of_day(period: np.ndarray | int) -> np.ndarray:
    """Hour of the day (0-23) of each of the week's 168 hours."""
    return np.asarray(period) % 24


def per_hour_rate(per_year: np.ndarray | float, params: DemandParams) -> np.ndarray:
    """Arrivals per hour in each of the week's 168 hours, for a yearly total (last axis: hours)."""
    return (
        np.asarray(per_year, dtype=float)[..., None] / 365.0 * DAYS_PER_CYCLE * week_profile(params)
    )


def calls_per_hour(population: float, params: DemandParams) -> np.ndarray:
    """Average calls arriving in each of the week's 168 hours (calls per hour)."""
    return per_hour_rate(calls_per_year(population, params), params)


def s136_per_year(population: float, demand: DemandParams, queues: QueueParams) -> float:
    """Section 136 detentions per year needing a place of safety."""
    check_population(population)
    return queues.s136_per_100k_per_year / 1e5 * population * demand.growth_factor
