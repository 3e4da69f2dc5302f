"""Today's crisis capacity for any of the 42 ICBs, from published NHS figures where they exist.

``make_icb_scenario("Kent and Medway")`` builds a complete, editable scenario:

- **Inpatient beds: published.** The ICB's mental illness beds are NHS England's KH03
  returns (mean of the latest four quarters), apportioned from trusts to ICBs over each
  trust's hospital sites (``data/build/build_beds.py``; the rule is in
  ``data/SOURCES.md``). The adult acute share of them is an assumption
  (:data:`ADULT_ACUTE_SHARE`). Beds sit at the real sites; a site whose share is under
  a 10-bed ward keeps none (its beds go to the others).
- **Length of stay: calibrated.** The one parameter an ICB's published figures identify
  is the effective length of stay: it is set so that the model's occupancy of today's
  beds equals the ICB's KH03 occupancy (:func:`calibrate_los`). One national parameter,
  the peakedness of bed demand (:data:`ICB_PEAKEDNESS`), is calibrated so that England's
  modelled OAP bed-days match the published figure.
- **Everything else: assumed**, as in the Sussex demo, and labelled so: mobile teams
  (one per hospital site, two where its catchment exceeds 200,000 people),
  place-of-safety suites (one per 415,000 people), crisis-line handlers (the Sussex
  demo's, scaled to population), one 6-place crisis house at the most populous cluster,
  and 20-27 illustrative candidate sites at population centres (weighted k-means).

Two trusts (RV5, RT5) have no KH03 rows; their beds are estimates from their last
published figure (2015), and the scenario of an ICB that relies on them says so.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from pathways import queues
from pathways._paths import data_dir
from pathways.errors import InputError, Problem
from pathways.scenario import Scenario, scenario_from_dict, with_changes

ADULT_ACUTE_BEDS_PER_100K = 19.5
"""Adult acute beds per 100,000 people, England median (NHS Benchmarking Network 2016)."""
MIN_WARD_BEDS = 10
"""Beds: a site whose share is under one ward keeps none."""
KEEP_BEDS_SHARE = 0.85
"""Beds at an existing ward may fall by at most 15% (as in the Sussex demo)."""
BUDGET_UPLIFT = 1.07
"""Revenue budget: today's modelled cost plus 7% (Sussex demo: GBP 60M over about 56M)."""
SUSSEX_POPULATION = 1_659_921
SUSSEX_HUB = {"night": 2, "day": 3, "evening": 3}
POPULATION_PER_SUITE = 415_000
TWO_TEAMS_FROM_POPULATION = 200_000
TODAY_CRISIS_HOUSE_PLACES = 6
ICB_PEAKEDNESS = 1.72
"""Peakedness of bed demand (variance / mean) in every ICB scenario: calibrated so that,
with each ICB's length of stay matched to its KH03 occupancy, England's modelled OAP
bed-days over the 42 ICBs equal the published 206,000 a year (inappropriate OAPs, 12
months to March 2021: RCPsych analysis of NHS Digital OAP statistics); docs/calibration.md."""
OCCUPANCY_TARGET_MAX = 0.97
"""The calibration target is the ICB's KH03 occupancy, at most this. Above it the loss
model carries the load only by turning most admissions away (Northamptonshire's 99.2%
needs a 77-day stay and places two thirds of admissions out of area), which no ward's
figures support; the scenario of a capped ICB says so."""
LOS_RANGE_DAYS = (10.0, 120.0)
"""Calibrated lengths of stay are kept within this range (days); outside it, the bound
is used and the scenario says the occupancy could not be matched."""
BUDGET_PATH = "budget.revenue_gbp_per_year"


# --------------------------------------------------------------------------- published beds


@functools.lru_cache(maxsize=1)
def icb_trust_beds() -> pd.DataFrame:
    """Each ICB's share of each trust's mental illness beds (``data/icb_trust_beds.parquet``)."""
    return pd.read_parquet(data_dir() / "icb_trust_beds.parquet")


@functools.lru_cache(maxsize=1)
def trust_sites() -> pd.DataFrame:
    """The hospital sites of trusts with mental illness beds (``data/trust_sites.parquet``)."""
    return pd.read_parquet(data_dir() / "trust_sites.parquet")


@functools.lru_cache(maxsize=1)
def adult_acute_share() -> float:
    """Adult acute beds as a share of all mental illness beds (an assumption).

    England's median adult acute beds per 100k (19.5, NHS Benchmarking Network 2016)
    over England's KH03 mental illness beds per 100k (latest four quarters, with the two
    estimated trusts; mid-2015 population): about 0.56.
    """
    from pathways.geography import list_icbs

    beds = float(icb_trust_beds()["beds_available"].sum())
    population = float(list_icbs()["pop_total"].sum())
    return ADULT_ACUTE_BEDS_PER_100K / (beds / population * 100_000)


def site_beds(icb_code: str) -> pd.DataFrame:
    """Mental illness beds at each site in the ICB: each trust's beds split over its sites
    in proportion to their nearest population (the rule of ``icb_trust_beds``)."""
    sites = trust_sites()
    beds = icb_trust_beds()
    per_trust = beds.groupby("trust_code").agg(
        available=("beds_available", "sum"), occupied=("beds_occupied", "sum"),
        source=("beds_source", "first"),
    )  # fmt: skip
    weight = sites["nearest_pop"] / sites.groupby("trust_code")["nearest_pop"].transform("sum")
    out = sites.assign(weight=weight).join(per_trust, on="trust_code")
    out = out[out["icb_cd"] == icb_code].copy()
    out["mi_beds"] = out["weight"] * out["available"]
    out["mi_occupied"] = out["weight"] * out["occupied"]
    return out.sort_values(["trust_code", "site_id"]).reset_index(drop=True)


# --------------------------------------------------------------------------- helpers


def kmeans(xy: np.ndarray, w: np.ndarray, k: int, seed: int = 20240601, iters: int = 100) -> np.ndarray:  # fmt: skip
    """Population-weighted k-means centres (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    centres = xy[rng.choice(len(xy), size=k, replace=False, p=w / w.sum())]
    for _ in range(iters):
        d = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        lab = d.argmin(axis=1)
        new = np.array(
            [
                np.average(xy[lab == c], axis=0, weights=w[lab == c])
                if (lab == c).any()
                else centres[c]
                for c in range(k)
            ]
        )
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that add up to ``total``."""
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=int)
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(int)
    order = np.argsort(-(raw - out), kind="stable")
    out[order[: total - out.sum()]] += 1
    return out


def n_candidates(population: float, n_areas: int) -> int:
    """20-27 candidate locations, more for larger footprints (27 for Sussex's 1.66 M)."""
    return int(min(n_areas, np.clip(round(population / 61_500), 20, 27)))


def calibrate_los(
    admissions_per_year: float, beds: int, occupancy: float, peakedness: float = 1.0
) -> tuple[float, bool]:
    """Length of stay (days) at which ``beds`` are occupied ``occupancy`` of the time.

    Carried load, E (1 - B(E, c, z)) with E = admissions x LOS / 365, rises with the
    length of stay, so bisection finds it. Returns the LOS and whether the target was
    reached within :data:`LOS_RANGE_DAYS` (if not, the nearest bound).
    """
    if beds <= 0 or admissions_per_year <= 0 or not 0 < occupancy < 1:
        raise InputError(
            Problem(
                "ICB scenario", None, "queues.inpatient_los_days",
                f"cannot calibrate the length of stay from {beds} beds, "
                f"{admissions_per_year:.0f} admissions a year and occupancy {occupancy:.1%}",
            )
        )  # fmt: skip

    def occ(los: float) -> float:
        load = admissions_per_year * los / 365.0
        return load * (1.0 - float(queues.erlang_b_peaked(load, beds, peakedness))) / beds

    lo, hi = LOS_RANGE_DAYS
    if occ(lo) >= occupancy:
        return lo, False
    if occ(hi) <= occupancy:
        return hi, False
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if occ(mid) < occupancy else (lo, mid)
    return round(0.5 * (lo + hi), 3), True


# --------------------------------------------------------------------------- the scenario


def make_icb_scenario(icb_code: str) -> Scenario:
    """Today's capacity for any ICB, by code or name (see the module docstring)."""
    from pathways.geography import list_icbs, load_footprint, resolve_icb
    from pathways.kpis import evaluate

    code = resolve_icb(icb_code)
    icb = list_icbs().set_index("icb_cd").loc[code]
    cols = ["lsoa11cd", "msoa11nm", "lad19nm", "pop_total", "pop_0_15", "pop_16_59",
            "pop_60_plus", "imd_decile", "centroid_x", "centroid_y"]  # fmt: skip
    areas = load_footprint(code, columns=cols)
    areas = pd.DataFrame(areas.drop(columns="geometry", errors="ignore")).reset_index()
    pop_w = areas["pop_total"].to_numpy(float)
    population = float(pop_w.sum())
    xy = areas[["centroid_x", "centroid_y"]].to_numpy(float)

    k = n_candidates(population, len(areas))
    centres = kmeans(xy, pop_w, k)
    cluster = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    cluster_pop = np.bincount(cluster, weights=pop_w, minlength=k)
    chosen = [int(((xy - c) ** 2).sum(axis=1).argmin()) for c in centres]
    biggest = chosen[int(cluster_pop.argmax())]

    # published mental illness beds at the ICB's sites; the adult acute share of them
    sb = site_beds(code).groupby("site_id", sort=True).agg(
        name=("name", "first"), x=("x", "first"), y=("y", "first"),
        trusts=("trust_code", lambda s: ", ".join(sorted(set(s)))),
        mi_beds=("mi_beds", "sum"), mi_occupied=("mi_occupied", "sum"),
        estimated=("source", lambda s: s.str.startswith("estimate").any()),
    )  # fmt: skip
    mi_total = float(sb["mi_beds"].sum())
    occupancy_kh03 = float(sb["mi_occupied"].sum() / mi_total)
    share = adult_acute_share()
    total_beds = int(round(share * mi_total))
    keep = sb["mi_beds"].to_numpy(float) > 0
    weights = sb["mi_beds"].to_numpy(float)
    while True:
        beds = largest_remainder(total_beds, np.where(keep, weights, 0.0))
        small = keep & (beds < MIN_WARD_BEDS)
        if not small.any() or keep.sum() <= 1:
            break
        keep &= ~(weights == weights[small].min())
    hospitals = sb[beds > 0].assign(beds=beds[beds > 0])
    sxy = hospitals[["x", "y"]].to_numpy(float)
    nearest = ((xy[:, None, :] - sxy[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    catchment = np.bincount(nearest, weights=pop_w, minlength=len(hospitals))
    teams = np.where(catchment >= TWO_TEAMS_FROM_POPULATION, 2, 1)
    suites = np.zeros(len(hospitals), dtype=int)
    n_suites = max(1, round(population / POPULATION_PER_SUITE))
    for j in np.argsort(-catchment, kind="stable")[: min(n_suites, len(hospitals))]:
        suites[j] = 1
    suites[int(np.argmax(catchment))] += max(0, n_suites - len(hospitals))
    estimated = bool(sb["estimated"].any())
    beds_words = (
        "KH03 mental illness beds (NHS England, mean of 2025-26 Q1-Q4"
        + ("; includes an ESTIMATE for a trust missing from KH03" if estimated else "")
        + f") x {share:.2f} adult acute share (assumed)"
    )

    out_sites: list[dict[str, Any]] = []
    for j, (sid, row) in enumerate(hospitals.iterrows()):
        b, t, s = int(row["beds"]), int(teams[j]), int(suites[j])
        out_sites.append(
            {
                "site_id": str(sid), "name": str(row["name"]),
                "x_m": float(row["x"]), "y_m": float(row["y"]), "status": "existing",
                "services": ["mobile_team", "inpatient"] + (["place_of_safety"] if s else []),
                "capacity": {"inpatient_beds": b, "mobile_teams": t, "place_of_safety_suites": s},
                "min_capacity": {"inpatient_beds": round(KEEP_BEDS_SHARE * b)},
                "can_shrink": True, "can_close": False, "illustrative": False,
                "note": (
                    f"Trust {row['trusts']}. Beds PUBLISHED: {row['mi_beds']:.0f} mental "
                    f"illness beds here by the apportioning rule ({beds_words}). Mobile teams "
                    f"and place-of-safety suites ASSUMED (catchment {catchment[j]:,.0f} people). "
                    "Beds may fall by at most 15% at a site."
                ),
            }
        )  # fmt: skip
    order = sorted(set(chosen), key=lambda i: (str(areas.lad19nm[i]), str(areas.msoa11nm[i]), i))
    for n, i in enumerate(order):
        today = TODAY_CRISIS_HOUSE_PLACES if i == biggest else 0
        out_sites.append(
            {
                "site_id": f"CAND{n + 1:02d}",
                "name": f"{areas.msoa11nm[i]} (population centre)",
                "x_m": round(float(xy[i, 0])), "y_m": round(float(xy[i, 1])),
                "status": "existing" if today else "candidate",
                "services": ["crisis_house", "mobile_team"],
                "capacity": {"crisis_house_places": today},
                "min_capacity": {"crisis_house_places": 4, "mobile_teams": 1},
                "max_capacity": {"crisis_house_places": 12, "mobile_teams": 3},
                "illustrative": True,
                "note": (
                    f"ASSUMED candidate: centroid of LSOA {areas.lsoa11cd[i]}, the centre of "
                    "a population cluster"
                    + ("; today's crisis house (6 places, ASSUMED)" if today else "")
                ),
            }
        )  # fmt: skip
    scale = population / SUSSEX_POPULATION
    hub = {shift: max(1, round(n * scale)) for shift, n in SUSSEX_HUB.items()}
    data = {
        "name": str(icb["icb_nm"]),
        "description": (
            f"Today's crisis capacity for {icb['icb_nm']} ({code}): {len(areas):,} LSOAs, "
            f"{population:,.0f} people (mid-2015). PUBLISHED: inpatient beds at "
            f"{len(hospitals)} hospital sites ({total_beds} adult acute beds from "
            f"{mi_total:,.0f} {beds_words}); KH03 occupancy {occupancy_kh03:.1%}, matched "
            "by the calibrated length of stay. ASSUMED: mobile teams, place-of-safety "
            "suites, crisis-line handlers (Sussex demo scaled to population), today's "
            "crisis house and the illustrative candidate sites. Built by "
            "pathways.icb.make_icb_scenario."
        ),
        "footprint": {"icb": code},
        "sites": out_sites,
        "hub": hub,
        "budget": {
            "revenue_gbp_per_year": None,
            "capital_gbp": max(1, round(5e6 * scale / 5e5)) * 5e5,
        },
        "objective": {"mode": "min_weighted"},
        "constraints": {
            "mobile_within_standard_share_min": 0.80,
            "hub_service_level_min": 0.80,
            "crisis_house_travel_mins": 45,
            "crisis_house_population_share_min": 0.6,
            "equity": {"enabled": True, "max_gap_share": 0.02},
        },
    }
    data["queues"] = {"inpatient_peakedness": ICB_PEAKEDNESS}
    data["provenance"] = {
        "inpatient_beds": f"published: {beds_words}, apportioned from trusts to sites by "
        "nearest population (data/SOURCES.md)",
        "crisis_house_places": "assumed: one 6-place crisis house at the most populous "
        "cluster (no national open data on crisis houses)",
        "mobile_teams": "assumed: one team per hospital site, two where its catchment "
        "exceeds 200,000 people (no national open data on team numbers)",
        "place_of_safety_suites": "assumed: one suite per 415,000 people",
        "hub_handlers": "assumed: the Sussex demo's handlers by shift (2/3/3), scaled to "
        "population",
        "queues.inpatient_peakedness": "calibrated: England's modelled OAP bed-days over "
        "the 42 ICBs equal 206,000 a year (RCPsych analysis of NHS Digital OAP statistics, "
        "12 months to March 2021)",
    }
    today = scenario_from_dict(data, file=f"make_icb_scenario({code})")
    card = evaluate(today)
    target = min(occupancy_kh03, OCCUPANCY_TARGET_MAX)
    los, matched = calibrate_los(
        card.kpis["admissions_per_year"], total_beds, target, ICB_PEAKEDNESS
    )
    capped = (
        f" (KH03: {occupancy_kh03:.1%}, capped at {OCCUPANCY_TARGET_MAX:.0%}, beyond which the "
        "model would place most admissions out of area)"
        if target < occupancy_kh03
        else " (KH03)"
    )
    note = (
        f" Length of stay {los:.1f} days, calibrated so that today's beds are occupied "
        f"{target:.1%} of the time{capped}."
        if matched
        else f" Length of stay set to {los:.0f} days, the end of the allowed range: KH03's "
        f"occupancy ({occupancy_kh03:.1%}) could not be matched with the modelled admissions."
    )
    los_source = (
        f"calibrated: today's beds occupied {target:.1%} of the time, the ICB's KH03 "
        f"occupancy (NHS England, 2025-26){' capped' if target < occupancy_kh03 else ''}"
        if matched
        else f"assumed: {los:.0f} days, the end of the allowed range (KH03 occupancy "
        f"{occupancy_kh03:.1%} could not be matched)"
    )
    today = with_changes(
        today,
        {
            "queues.inpatient_los_days": los,
            "description": data["description"] + note,
            "provenance": {**data["provenance"], "queues.inpatient_los_days": los_source},
        },
    )
    cost = evaluate(today).kpis["total_cost_gbp_per_year"]
    budget = math.ceil(cost * BUDGET_UPLIFT / 5e5) * 5e5
    return with_changes(today, {BUDGET_PATH: budget})
