"""Scenario files: what a commissioner or planner describes about a footprint.

A scenario is a YAML file validated by frozen pydantic models. Field names
carry their units (``los_days``, ``cost_gbp_per_year``); every default states
its unit and source in ``json_schema_extra`` so the app and the docs can list
them (see :func:`parameter_table`). Variants are made with
:func:`with_changes`, which re-validates, never by mutation.

Errors name the YAML path of the bad field (``sites[3].capacity.inpatient_beds``),
its line in the file, and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pathways.errors import InputError, Problem

SERVICES: tuple[str, ...] = ("inpatient", "crisis_house", "mobile_team", "place_of_safety")
"""Site-based service types. The crisis hub (phone line) is footprint-wide."""

CAPACITY_FIELD: dict[str, str] = {
    "inpatient": "inpatient_beds",
    "crisis_house": "crisis_house_places",
    "mobile_team": "mobile_teams",
    "place_of_safety": "place_of_safety_suites",
}
SHIFTS: tuple[str, ...] = ("night", "day", "evening")
SHIFT_HOURS: dict[str, tuple[int, int]] = {"night": (0, 8), "day": (8, 16), "evening": (16, 24)}
STAFF_GROUPS: tuple[str, ...] = (
    "nurses",
    "doctors",
    "support_workers",
    "peer_support_workers",
    "call_handlers",
)


def param(default: Any, unit: str, source: str, description: str, **kwargs: Any) -> Any:
    """A model field that documents its unit and source."""
    return Field(
        default,
        description=description,
        json_schema_extra={"unit": unit, "source": source},
        **kwargs,
    )


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool | np.bool_)


def _strict_problem(value: Any, annotation: Any, where: str = "") -> str | None:
    """Why ``value`` is the wrong kind for ``annotation``, or None.

    Pydantic's lax mode reads ``true`` as 1 and ``"12"`` as 12; a scenario must not: a
    bed count of ``true`` is a mistake, not one bed. Numbers stay numbers (NumPy
    numbers included), true/false stay booleans, and containers are checked element by
    element.
    """
    at = f" at '{where}'" if where else ""
    if annotation is float or annotation is int:
        kind = "a valid integer (a whole number)" if annotation is int else "a number"
        if _is_bool(value):
            return f"expected {kind}{at}, got {str(bool(value)).lower()} (true/false is not a number)"
        if isinstance(value, str | bytes):
            return f"expected {kind}{at}, got the text {value!r} (write numbers without quotes)"
        return None
    if annotation is str:
        if isinstance(value, str) and any(
            (ord(ch) < 32 and ch not in "\t\n\r") or ord(ch) == 127 for ch in value
        ):
            return f"text{at} holds a control character (such as a NUL byte); remove it"
        return None
    if annotation is bool:
        if not _is_bool(value):
            return f"expected true or false{at}, got {value!r}"
        return None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        if value is None:
            return None
        for arg in args:
            if arg is type(None):
                continue
            if arg in (float, int, bool, str) or get_origin(arg) in (tuple, dict):
                return _strict_problem(value, arg, where)
        return None
    if origin is tuple and args and isinstance(value, list | tuple):
        item = args[0]
        for i, v in enumerate(value):
            problem = _strict_problem(v, item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if origin is dict and len(args) == 2 and isinstance(value, Mapping):
        for k, v in value.items():
            problem = _strict_problem(v, args[1], f"{where}.{k}" if where else str(k))
            if problem:
                return problem
    return None


def _strictly(annotation: type) -> Any:
    def check(value: Any) -> Any:
        problem = _strict_problem(value, annotation)
        if problem:
            raise ValueError(problem)
        return value

    return BeforeValidator(check)


Num = Annotated[float, _strictly(float)]
"""A number: not true/false, not text (scenario fields use it instead of ``float``)."""
Int = Annotated[int, _strictly(int)]
Bool = Annotated[bool, _strictly(bool)]
Text = Annotated[str, _strictly(str)]


class Frozen(BaseModel):
    """Base for every scenario model: immutable, no unknown keys.

    Fields use :data:`Num`, :data:`Int`, :data:`Bool` and :data:`Text` so that loose
    types (``true`` for a count, ``"12"`` for a number) are refused.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False
    )


# --------------------------------------------------------------------------- demand

# Hour-of-day shares of crisis-line calls and mobile-team call-outs, 00:00 first.
# Assumption shaped on published crisis-line profiles: a trough at 05:00-07:00, a
# rise through the day and an evening peak; documented in docs/model.md.
DEFAULT_HOURLY_PROFILE: tuple[float, ...] = (
    0.034, 0.028, 0.023, 0.019, 0.016, 0.015, 0.017, 0.024,
    0.035, 0.045, 0.050, 0.052, 0.052, 0.052, 0.052, 0.053,
    0.055, 0.057, 0.058, 0.058, 0.058, 0.055, 0.050, 0.042,
)  # fmt: skip


DEFAULT_WEEKDAY_PROFILE: tuple[float, ...] = (0.150, 0.146, 0.143, 0.142, 0.140, 0.138, 0.141)


class DemandParams(Frozen):
    """Crisis demand generated by each small area."""

    episodes_per_100k_per_year: Num = param(
        1128.0,
        "in-person crisis episodes per 100,000 population per year",
        "calibrated: England adult acute admissions implied by 19.5 beds/100k, 33-day LOS "
        "and 95% occupancy, divided by the default pathway's admission share (docs/calibration.md)",
        "Base rate of in-person crisis episodes at England's age mix and average deprivation.",
        ge=0,
        le=100000,
    )
    relative_rate_0_15: Num = param(
        0.1,
        "rate ratio vs ages 16-59",
        "assumption: under-16s are mostly served by separate CAMHS crisis pathways",
        "Relative episode rate of children aged 0-15.",
        ge=0,
        le=10,
    )
    relative_rate_60_plus: Num = param(
        0.6,
        "rate ratio vs ages 16-59",
        "assumption: older adults present less often to crisis services",
        "Relative episode rate of people aged 60 and over.",
        ge=0,
        le=10,
    )
    deprivation_ratio: Num = param(
        3.5,
        "rate ratio, most vs least deprived IMD decile",
        "NHS Digital, Mental Health Act Statistics, Annual Figures: detention rate in the most "
        "vs least deprived decile about 3.5x (to verify)",
        "Log-linear deprivation gradient across IMD deciles.",
        ge=1,
        le=20,
    )
    growth_factor: Num = param(
        1.0, "multiplier", "user setting", "Demand growth applied to every area.", gt=0, le=10
    )
    veterans_share: Num = param(
        0.0,
        "share of episodes",
        "user setting (national recommendations ask veterans to be reported separately)",
        "Share of episodes involving veterans, reported as its own line.",
        ge=0,
        le=1,
    )
    calls_per_100k_per_year: Num = param(
        4286.0,
        "crisis-line calls per 100,000 population per year",
        "NHS England: about 200,000 NHS 111 option 2 calls a month over 56 M people",
        "Calls to the crisis hub.",
        ge=0,
        le=1000000,
    )
    hourly_profile: tuple[Num, ...] = param(
        DEFAULT_HOURLY_PROFILE,
        "share of daily calls in each hour (24 values)",
        "assumption shaped on published crisis-line hourly profiles",
        "Hour-of-day profile of crisis-line calls and mobile call-outs.",
    )

    weekday_profile: tuple[Num, ...] = param(
        DEFAULT_WEEKDAY_PROFILE,
        "share of weekly calls on each day, Monday first (7 values)",
        "assumption: crisis contacts are spread almost evenly over the week, slightly higher early in the week",
        "Day-of-week profile of crisis-line calls and mobile call-outs.",
    )

    @field_validator("weekday_profile")
    @classmethod
    def _weekday_ok(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 7:
            raise ValueError(f"expected 7 daily values (Monday first), got {len(v)}")
        if any(x < 0 for x in v):
            raise ValueError("daily shares must be non-negative")
        if abs(sum(v) - 1.0) > 1e-3:
            raise ValueError(f"daily shares must sum to 1 (they sum to {sum(v):.4f})")
        return v

    @field_validator("hourly_profile")
    @classmethod
    def _profile_ok(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 24:
            raise ValueError(f"expected 24 hourly values, got {len(v)}")
        if any(x < 0 for x in v):
            raise ValueError("hourly shares must be non-negative")
        total = sum(v)
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"hourly shares must sum to 1 (they sum to {total:.4f})")
        return v


# --------------------------------------------------------------------------- pathway

ROUTING_TARGETS: dict[str, tuple[str, ...]] = {
    "first_contact": ("mobile_team", "place_of_safety", "crisis_house"),
    "mobile_team": ("resolved", "home_treatment", "crisis_house", "inpatient"),
    "place_of_safety": ("resolved", "home_treatment", "crisis_house", "inpatient"),
    "crisis_house": ("resolved", "home_treatment", "inpatient"),
}
"""The pathway graph: each node's allowed successors. It is acyclic by construction:
first contact -> mobile team / place of safety -> crisis house -> inpatient."""

TERMINAL_OUTCOMES: tuple[str, ...] = (
    "resolved",
    "home_treatment",
    "admitted_local",
    "admitted_out_of_area",
)


def _routing_field(default: dict[str, float], node: str, source: str) -> Any:
    return param(
        default,
        "share of the node's episodes (sums to 1)",
        source,
        f"Where episodes go after the {node.replace('_', ' ')} tier.",
    )


NHS_DEFAULT_ROUTING: dict[str, dict[str, float]] = {
    "first_contact": {"mobile_team": 0.40, "place_of_safety": 0.45, "crisis_house": 0.15},
    "mobile_team": {
        "resolved": 0.50,
        "home_treatment": 0.30,
        "crisis_house": 0.12,
        "inpatient": 0.08,
    },
    "place_of_safety": {
        "resolved": 0.72,
        "home_treatment": 0.10,
        "crisis_house": 0.06,
        "inpatient": 0.12,
    },
    "crisis_house": {"resolved": 0.78, "home_treatment": 0.10, "inpatient": 0.12},
}

# Crisis Now (RI International) ratios mapped onto this graph: ED -> place of safety
# tier with 100% admission; crisis receiving facility and short-term bed -> crisis
# house, whose step-up share is 35% x 25%.
CRISIS_NOW_ROUTING: dict[str, dict[str, float]] = {
    "first_contact": {"mobile_team": 0.32, "place_of_safety": 0.14, "crisis_house": 0.54},
    "mobile_team": {
        "resolved": 0.70,
        "home_treatment": 0.0,
        "crisis_house": 0.30,
        "inpatient": 0.0,
    },
    "place_of_safety": {
        "resolved": 0.0,
        "home_treatment": 0.0,
        "crisis_house": 0.0,
        "inpatient": 1.0,
    },
    "crisis_house": {"resolved": 0.9125, "home_treatment": 0.0, "inpatient": 0.0875},
}


PRESETS: dict[str, dict[str, dict[str, float]]] = {
    "nhs_default": NHS_DEFAULT_ROUTING,
    "crisis_now": CRISIS_NOW_ROUTING,
}
"""Named routing presets (``custom`` is any routing given in full)."""


class PathwayParams(Frozen):
    """Routing between tiers and what a full node sends onward."""

    preset: Literal["nhs_default", "crisis_now", "custom"] = param(
        "nhs_default",
        "name",
        "nhs_default: assumptions calibrated in docs/calibration.md; crisis_now: RI International "
        "Crisis Resource Need Calculator ratios (Arizona calibration, 2014 data)",
        "Which published set of routing fractions the routing started from.",
    )
    routing: dict[str, dict[str, Num]] = param(
        NHS_DEFAULT_ROUTING,
        "share of each node's episodes (each row sums to 1)",
        "assumption: the nhs_default preset, shares set in docs/calibration.md",
        "Routing fractions of the pathway graph.",
    )
    crisis_house_full_to_inpatient_share: Num = param(
        0.5,
        "share of turned-away crisis-house referrals",
        "assumption: half of those who cannot get a crisis-house place are admitted, the rest "
        "stay with home treatment",
        "Overflow edge: a full (or unreachable) crisis house sends this share to admission.",
        ge=0,
        le=1,
    )
    crisis_house_max_travel_mins: Num = param(
        60.0,
        "minutes by road",
        "assumption: crisis houses serve a local catchment",
        "Areas farther than this from every open crisis house cannot use one.",
        gt=0,
        le=600,
    )

    @field_validator("routing")
    @classmethod
    def _routing_ok(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        problems = []
        for node, targets in ROUTING_TARGETS.items():
            row = v.get(node)
            if row is None:
                problems.append(f"node '{node}' is missing (expected shares to {list(targets)})")
                continue
            unknown = set(row) - set(targets)
            if unknown:
                problems.append(
                    f"node '{node}' routes to {sorted(unknown)}, which it cannot reach "
                    f"(allowed: {list(targets)})"
                )
            if any(x < 0 or x > 1 for x in row.values()):
                problems.append(f"node '{node}' has a share outside 0..1")
            total = sum(row.values())
            if abs(total - 1.0) > 1e-6:
                problems.append(f"node '{node}' shares sum to {total:.4f}, expected 1")
        unknown_nodes = set(v) - set(ROUTING_TARGETS)
        if unknown_nodes:
            problems.append(
                f"unknown node(s) {sorted(unknown_nodes)} (expected {list(ROUTING_TARGETS)})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return {
            node: {t: float(row.get(t, 0.0)) for t in ROUTING_TARGETS[node]}
            for node, row in v.items()
        }


# --------------------------------------------------------------------------- queues


class QueueParams(Frozen):
    """Service times and standards at each capacitated node."""

    inpatient_los_days: Num = param(
        33.0,
        "days",
        "Centre for Mental Health 2019: adult acute LOS 33 days (England)",
        "Mean length of stay on a local acute ward.",
        gt=0,
        le=365,
    )
    inpatient_peakedness: Num = param(
        1.0,
        "variance/mean of bed demand (1 = Poisson)",
        "calibrated: with Poisson demand an average-size ICB at 19.5 beds/100k and 95% occupancy "
        "sees England's OAP bed-days per 100k within 2% (docs/calibration.md)",
        "Burstiness of admissions (Hayward approximation to Erlang B); raise it for burstier demand.",
        ge=1,
        le=20,
    )
    oap_los_days: Num = param(
        40.0,
        "days",
        "Grant Thornton OAP analysis: 77% of OAPs last 15+ nights and 46% 31+ nights",
        "Mean length of an out-of-area placement.",
        gt=0,
        le=365,
    )
    oap_travel_mins: Num = param(
        120.0,
        "minutes by road",
        "Grant Thornton: 57% of OAPs are more than 100 km from home",
        "Travel to an out-of-area bed.",
        ge=0,
        le=1440,
    )
    crisis_house_los_days: Num = param(
        7.0,
        "days",
        "assumption: crisis-house stays are typically up to a week",
        "Mean crisis-house stay.",
        gt=0,
        le=365,
    )
    mobile_service_hours: Num = param(
        3.0,
        "hours per episode",
        "assumption: assessment plus travel and write-up",
        "Time a mobile team is busy with one episode.",
        gt=0,
        le=48,
    )
    mobile_dispatch_mins: Num = param(
        15.0,
        "minutes",
        "assumption: triage and dispatch before the team sets off",
        "Time from referral to departure.",
        ge=0,
        le=600,
    )
    mobile_standard_urban_mins: Num = param(
        60.0,
        "minutes",
        "1 h urban: commonly used, not confirmed by a published standard (set locally)",
        "Response standard in urban areas.",
        gt=0,
        le=1440,
    )
    mobile_standard_rural_mins: Num = param(
        120.0,
        "minutes",
        "2 h rural: commonly used, not confirmed by a published standard (set locally)",
        "Response standard in rural areas.",
        gt=0,
        le=1440,
    )
    mobile_max_utilisation: Num = param(
        0.95,
        "share of team time at the busiest hour",
        "assumption: keeps the team queue stable",
        "Teams at a base may not be loaded beyond this.",
        gt=0,
        le=1,
    )
    hub_aht_seconds: Num = param(
        600.0,
        "seconds",
        "assumption: a crisis call lasts about 10 minutes",
        "Average handling time of a crisis-line call.",
        gt=0,
        le=7200,
    )
    hub_answer_within_seconds: Num = param(
        20.0,
        "seconds",
        "SAMHSA 988 cooperative agreements: 95% answered within 20 s",
        "Answer time of the crisis-line service level.",
        gt=0,
        le=3600,
    )
    hub_mean_patience_seconds: Num = param(
        180.0,
        "seconds",
        "assumption: callers wait on average 3 minutes before hanging up",
        "Mean patience of a caller waiting to be answered.",
        gt=0,
        le=7200,
    )
    s136_per_100k_per_year: Num = param(
        52.0,
        "section 136 detentions per 100,000 per year",
        "Home Office, Police powers and procedures statistics: 31,213 detentions "
        "(England and Wales 2023/24) over about 60 M people",
        "Demand for places of safety.",
        ge=0,
        le=10000,
    )
    place_of_safety_los_days: Num = param(
        0.5,
        "days",
        "assumption: about 12 hours in a place of safety (legal maximum 24 h)",
        "Mean stay in a place of safety suite.",
        gt=0,
        le=30,
    )


# --------------------------------------------------------------------------- costs

MAX_CAPITAL_GBP_PER_SITE = 1e9
"""Largest one-off capital cost of opening one service at one site (a new hospital ~ GBP 0.5 bn)."""
MAX_WTE_PER_UNIT = 100.0
"""Largest staffing of one bed, place, team, suite or handler position (WTE)."""

DEFAULT_WTE_PER_UNIT: dict[str, dict[str, float]] = {
    "inpatient": {"nurses": 1.40, "doctors": 0.10, "support_workers": 0.60,
                  "peer_support_workers": 0.05, "call_handlers": 0.0},
    "crisis_house": {"nurses": 0.60, "doctors": 0.02, "support_workers": 1.20,
                     "peer_support_workers": 0.40, "call_handlers": 0.0},
    "mobile_team": {"nurses": 5.50, "doctors": 0.50, "support_workers": 3.00,
                    "peer_support_workers": 1.00, "call_handlers": 0.0},
    "place_of_safety": {"nurses": 5.20, "doctors": 0.20, "support_workers": 0.0,
                        "peer_support_workers": 0.0, "call_handlers": 0.0},
    "hub": {"nurses": 0.30, "doctors": 0.0, "support_workers": 0.0,
            "peer_support_workers": 0.15, "call_handlers": 1.30},
}  # fmt: skip


class CostParams(Frozen):
    """Annual revenue costs per unit of capacity, OAP cost and capital."""

    inpatient_bed_gbp_per_year: Num = param(
        151_840.0,
        "GBP per funded bed per year",
        "NHS inpatient bed-day GBP 404-429 (trust FOI returns): midpoint 416 x 365",
        "Revenue cost of one local acute bed.",
        ge=0,
        le=10000000,
    )
    crisis_house_place_gbp_per_year: Num = param(
        175_200.0,
        "GBP per place per year",
        "crisis-house bed-day about GBP 480 (Tees, Esk and Wear Valleys NHS FT; "
        "secondary source) x 365",
        "Revenue cost of one crisis-house place.",
        ge=0,
        le=10000000,
    )
    mobile_team_gbp_per_year: Num = param(
        620_000.0,
        "GBP per team on shift 24/7 per year",
        "10 WTE (default staffing) at about GBP 62k per WTE with on-costs (Agenda for Change "
        "band 5-7 midpoints; assumption)",
        "Revenue cost of keeping one mobile team on shift around the clock.",
        ge=0,
        le=100000000,
    )
    handler_position_gbp_per_year: Num = param(
        68_000.0,
        "GBP per handler position per 8-hour shift per year",
        "1.75 WTE per position-shift (56 h/week x leave uplift) at about GBP 39k per WTE with "
        "on-costs (assumption)",
        "Revenue cost of one crisis-line handler on one shift every day.",
        ge=0,
        le=10000000,
    )
    place_of_safety_suite_gbp_per_year: Num = param(
        480_000.0,
        "GBP per suite per year",
        "5.4 WTE to staff a suite 24/7 at about GBP 62k plus estates (assumption)",
        "Revenue cost of one health-based place of safety suite.",
        ge=0,
        le=100000000,
    )
    oap_gbp_per_bed_day: Num = param(
        620.0,
        "GBP per OAP bed-day",
        "private-sector bed GBP 620 in 2021/22; OAP bed-day GBP 545 in 2018 (Mind / FOI returns)",
        "Cost of one out-of-area bed-day.",
        ge=0,
        le=100000,
    )
    capital_gbp_per_new_site: dict[str, Num] = param(
        {
            "inpatient": 12_000_000.0,
            "crisis_house": 600_000.0,
            "mobile_team": 60_000.0,
            "place_of_safety": 400_000.0,
        },
        "GBP per site opened",
        "assumption: order-of-magnitude estates costs",
        "One-off capital cost of opening a service at a candidate site.",
    )
    wte_per_unit: dict[str, dict[str, Num]] = param(
        DEFAULT_WTE_PER_UNIT,
        "whole-time equivalents per unit of capacity",
        "assumptions informed by CRHT 14 staff per 150k (National Audit Office) and ward "
        "establishments; "
        "docs/model.md",
        "Staffing per bed, place, team, suite and handler position.",
    )

    @field_validator("capital_gbp_per_new_site")
    @classmethod
    def _capital_ok(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown service(s) {sorted(unknown)}; expected {list(SERVICES)}")
        if any(not 0 <= x <= MAX_CAPITAL_GBP_PER_SITE for x in v.values()):
            raise ValueError(
                f"capital costs must lie between 0 and {MAX_CAPITAL_GBP_PER_SITE:,.0f} GBP per site"
            )
        return {s: float(v.get(s, 0.0)) for s in SERVICES}

    @field_validator("wte_per_unit")
    @classmethod
    def _wte_ok(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        units = (*SERVICES, "hub")
        unknown = set(v) - set(units)
        if unknown:
            raise ValueError(f"unknown unit(s) {sorted(unknown)}; expected {list(units)}")
        out = {}
        for unit in units:
            row = v.get(unit, DEFAULT_WTE_PER_UNIT[unit])
            bad = set(row) - set(STAFF_GROUPS)
            if bad:
                raise ValueError(
                    f"'{unit}': unknown staff group(s) {sorted(bad)}; expected {list(STAFF_GROUPS)}"
                )
            if any(not 0 <= x <= MAX_WTE_PER_UNIT for x in row.values()):
                raise ValueError(
                    f"'{unit}': WTE per unit must lie between 0 and {MAX_WTE_PER_UNIT:g}"
                )
            out[unit] = {g: float(row.get(g, 0.0)) for g in STAFF_GROUPS}
        return out


# --------------------------------------------------------------------------- sites


MAX_UNITS: dict[str, int] = {
    "inpatient": 5_000,
    "crisis_house": 500,
    "mobile_team": 200,
    "place_of_safety": 100,
}
"""Most units of a service at one site: far above any real site, low enough that nothing
absurd (a typo of 1e12 beds) reaches the queueing code."""
MAX_HANDLERS_PER_SHIFT = 500
"""Most crisis-line handlers on one shift (England's busiest lines have a few dozen)."""
MAX_SITES = 2_000
"""Most sites in one scenario (an ICB has tens; England's mental health estate a few thousand)."""
MAX_ID_CHARS = 100
MAX_NAME_CHARS = 500
MAX_TEXT_CHARS = 20_000
MAX_TARGET_PER_YEAR = 1e8
"""Most OAP bed-days or admissions a target may name (England: about 0.3 M OAP bed-days)."""
MAX_WORKFORCE_CAP_WTE = 1_000_000
"""Largest workforce cap (the whole NHS employs about 1.3 M WTE)."""


class Capacity(Frozen):
    """Capacity of each site-based service, in its own unit."""

    inpatient_beds: Int = Field(0, ge=0, le=MAX_UNITS["inpatient"], description="beds")
    crisis_house_places: Int = Field(0, ge=0, le=MAX_UNITS["crisis_house"], description="places")
    mobile_teams: Int = Field(
        0, ge=0, le=MAX_UNITS["mobile_team"], description="teams on shift 24/7"
    )
    place_of_safety_suites: Int = Field(
        0, ge=0, le=MAX_UNITS["place_of_safety"], description="suites"
    )

    def of(self, service: str) -> int:
        return int(getattr(self, CAPACITY_FIELD[service]))


class Site(Frozen):
    """An existing service site or a candidate location."""

    site_id: Text = Field(min_length=1, max_length=MAX_ID_CHARS)
    name: Text = Field(min_length=1, max_length=MAX_NAME_CHARS)
    x_m: Num = Field(description="easting, EPSG:27700 metres", ge=0, le=700_000)
    y_m: Num = Field(description="northing, EPSG:27700 metres", ge=0, le=1_300_000)
    status: Literal["existing", "candidate"] = "candidate"
    services: tuple[
        Literal["inpatient", "crisis_house", "mobile_team", "place_of_safety"], ...
    ] = ()
    capacity: Capacity = Capacity()
    min_capacity: Capacity = Field(Capacity(), description="minimum if the service is open")
    max_capacity: Capacity | None = Field(
        None, description="maximum; default from optimiser limits"
    )
    can_shrink: Bool = True
    can_close: Bool = True
    illustrative: Bool = False
    note: Text = Field("", max_length=MAX_TEXT_CHARS)

    @model_validator(mode="after")
    def _capacity_matches_services(self) -> Site:
        for service in SERVICES:
            if self.capacity.of(service) > 0 and service not in self.services:
                raise ValueError(
                    f"capacity {CAPACITY_FIELD[service]}={self.capacity.of(service)} given but "
                    f"'{service}' is not in services {list(self.services)}"
                )
            if self.max_capacity is not None and self.min_capacity.of(
                service
            ) > self.max_capacity.of(service):
                raise ValueError(f"min_capacity.{CAPACITY_FIELD[service]} exceeds max_capacity")
        return self


class HubCapacity(Frozen):
    """Crisis-line handlers on duty in each 8-hour shift."""

    night: Int = Field(0, ge=0, le=MAX_HANDLERS_PER_SHIFT, description="handlers 00:00-08:00")
    day: Int = Field(0, ge=0, le=MAX_HANDLERS_PER_SHIFT, description="handlers 08:00-16:00")
    evening: Int = Field(0, ge=0, le=MAX_HANDLERS_PER_SHIFT, description="handlers 16:00-24:00")

    def of(self, shift: str) -> int:
        return int(getattr(self, shift))


# --------------------------------------------------------------------------- goals


class Footprint(Frozen):
    """Where: an ICB from the bundled data, or the user's own areas."""

    icb: Text | None = Field(None, description="ICB code (E54...) or name, e.g. 'Sussex'")
    areas_file: Text | None = Field(
        None, description="user areas (GeoJSON/GPKG/zip/CSV), relative to the scenario file"
    )
    aggregate_to: Literal["lsoa", "msoa"] = "lsoa"
    travel_matrix_file: Text | None = Field(
        None, description="optional user travel matrix (CSV/Parquet)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> Footprint:
        if (self.icb is None) == (self.areas_file is None):
            raise ValueError("give exactly one of 'icb' or 'areas_file'")
        return self


class Budget(Frozen):
    revenue_gbp_per_year: Num | None = Field(
        None, ge=0, le=1e11, description="None: today's spend"
    )
    capital_gbp: Num | None = Field(None, ge=0, le=1e11, description="None: no capital limit")


class ObjectiveWeights(Frozen):
    oap_bed_day: Num = param(
        1.0,
        "weight per OAP bed-day",
        "default: the unit of account",
        "Weight of one OAP bed-day.",
        ge=0,
        le=1000000.0,
    )
    admission: Num = param(
        10.0,
        "OAP bed-day equivalents per admission",
        "assumption: an avoidable admission counts like 10 OAP bed-days",
        "Weight of one admission.",
        ge=0,
        le=1000000.0,
    )
    travel_hour: Num = param(
        0.02,
        "OAP bed-day equivalents per person-hour of travel",
        "assumption",
        "Weight of one person-hour travelled to crisis-house and mobile services.",
        ge=0,
        le=1000000.0,
    )


class Targets(Frozen):
    oap_bed_days_per_year_max: Num | None = Field(None, ge=0, le=MAX_TARGET_PER_YEAR)
    admissions_per_year_max: Num | None = Field(None, ge=0, le=MAX_TARGET_PER_YEAR)


class Objective(Frozen):
    mode: Literal["min_weighted", "min_cost"] = "min_weighted"
    weights: ObjectiveWeights = ObjectiveWeights()
    targets: Targets = Targets()


class EquityRule(Frozen):
    """The most deprived fifth may not fare worse than the footprint average (less a gap)."""

    enabled: Bool = False
    max_gap_share: Num = Field(
        0.0, ge=0, le=1, description="allowed shortfall, as a share (0.05 = 5 points)"
    )


class Constraints(Frozen):
    mobile_within_standard_share_min: Num | None = Field(None, ge=0, le=1)
    crisis_house_travel_mins: Num | None = Field(None, gt=0, le=600)
    crisis_house_population_share_min: Num | None = Field(None, ge=0, le=1)
    hub_service_level_min: Num | None = Field(None, ge=0, le=1)
    equity: EquityRule = EquityRule()
    workforce_caps_wte: dict[str, Num] = Field(default_factory=dict)

    @field_validator("workforce_caps_wte")
    @classmethod
    def _caps_ok(cls, v: dict[str, float]) -> dict[str, float]:
        bad = set(v) - set(STAFF_GROUPS)
        if bad:
            raise ValueError(f"unknown staff group(s) {sorted(bad)}; expected {list(STAFF_GROUPS)}")
        if any(not 0 <= x <= MAX_WORKFORCE_CAP_WTE for x in v.values()):
            raise ValueError(f"caps must lie between 0 and {MAX_WORKFORCE_CAP_WTE:,} WTE")
        return v


class Scenario(Frozen):
    """Everything needed to evaluate or optimise crisis capacity for one footprint."""

    name: Text = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: Text = Field("", max_length=MAX_TEXT_CHARS)
    footprint: Footprint
    sites: tuple[Site, ...] = Field((), max_length=MAX_SITES)
    hub: HubCapacity = HubCapacity()
    demand: DemandParams = DemandParams()
    pathway: PathwayParams = PathwayParams()
    queues: QueueParams = QueueParams()
    costs: CostParams = CostParams()
    budget: Budget = Budget()
    objective: Objective = Objective()
    constraints: Constraints = Constraints()
    provenance: dict[Text, Text] = Field(
        default_factory=dict,
        max_length=100,
        description="Where this scenario's figures come from: a capacity (inpatient_beds, "
        "crisis_house_places, mobile_teams, place_of_safety_suites, hub_handlers) or a "
        "parameter path (queues.inpatient_los_days) -> 'published: ...', 'calibrated: ...' "
        "or 'assumed: ...'. Parameters not listed keep their default's source.",
    )
    base_dir: Text | None = Field(None, exclude=True, description="folder the file was read from")

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, sites: tuple[Site, ...]) -> tuple[Site, ...]:
        seen: dict[str, int] = {}
        for i, s in enumerate(sites):
            if s.site_id in seen:
                raise ValueError(
                    f"site_id '{s.site_id}' is used by sites[{seen[s.site_id]}] and sites[{i}]"
                )
            seen[s.site_id] = i
        from pathways.queues import MAX_SERVERS

        for label, caps in (
            ("capacity", [s.capacity for s in sites]),
            ("max_capacity", [s.max_capacity for s in sites if s.max_capacity is not None]),
        ):
            beds = sum(c.inpatient_beds for c in caps)
            if beds > MAX_SERVERS:
                raise ValueError(
                    f"{label}.inpatient_beds over all sites is {beds:,}, more than the "
                    f"{MAX_SERVERS:,} beds the model can compute in one pool"
                )
        return sites

    def site(self, site_id: str) -> Site:
        for s in self.sites:
            if s.site_id == site_id:
                return s
        raise KeyError(site_id)

    def fingerprint(self) -> str:
        """Stable hash of the scenario's content (for caching and provenance)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- presets


def apply_preset(pathway: PathwayParams, preset: str) -> PathwayParams:
    """Return pathway parameters with the routing of a named preset."""
    routing = PRESETS.get(preset)
    if routing is None:
        raise InputError(
            Problem(
                "pathway",
                None,
                "preset",
                f"unknown preset '{preset}'; expected nhs_default or crisis_now",
            )
        )
    return PathwayParams.model_validate(
        {**pathway.model_dump(), "preset": preset, "routing": routing}
    )


# --------------------------------------------------------------------------- I/O


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


# Limits on YAML files (scenarios, plans, batch specs): a small file must not be able to
# ask for unbounded memory or time. See docs/input-limits.md.
MAX_YAML_BYTES = 2 * 1024 * 1024
"""Largest YAML file read (a 2,000-site scenario is under 1 MB)."""
MAX_YAML_DEPTH = 40
"""Deepest nesting of lists and mappings (scenarios need 4 levels)."""
MAX_YAML_ALIASES = 100
"""Most aliases (``*name``) in one file."""
MAX_YAML_VALUES = 200_000
"""Most values (scalars, lists and mappings) once every alias is expanded."""


class _LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits on nesting and aliases, and no duplicate keys."""

    def __init__(self, stream: str, file: str):
        super().__init__(stream)
        self._file = file
        self._depth = 0
        self._aliases = 0
        self._open_anchors: list[str] = []

    def _refuse(self, line: int | None, message: str) -> InputError:
        return InputError(Problem(self._file, line, None, message))

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if event.anchor in self._open_anchors:
                raise self._refuse(
                    line, f"the alias '*{event.anchor}' refers to a value that contains itself"
                )
            if self._aliases > MAX_YAML_ALIASES:
                raise self._refuse(
                    line,
                    f"more than {MAX_YAML_ALIASES} aliases ('*name'); write the values out instead",
                )
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise self._refuse(
                line, f"lists and mappings are nested more than {MAX_YAML_DEPTH} levels deep"
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.append(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            if anchor is not None:
                self._open_anchors.pop()
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's constructors, with a value they cannot read (``!!bool maybe``,
        ``!!timestamp x``, an empty ``!!float``, ``2020-13-45``) reported as a YAML error at
        its line."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, TypeError, AttributeError, KeyError, IndexError) as err:
            reason = str(err)
            if "integer string conversion" in reason:
                reason = "a number has thousands of digits"
            elif isinstance(err, AttributeError | KeyError | IndexError) or not reason:
                kind = str(node.tag).rsplit(":", 1)[-1]
                shown = str(node.value)[:60] if isinstance(node, yaml.ScalarNode) else "value"
                reason = f"{shown!r} is not a valid {kind}"
            raise yaml.constructor.ConstructorError(
                None, None, f"a value cannot be read: {reason}", node.start_mark
            ) from None


def _check_tree(root: yaml.Node, file: str) -> None:
    """Refuse duplicate keys and documents that aliases expand beyond ``MAX_YAML_VALUES``."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:  # depth is bounded by MAX_YAML_DEPTH
        key = id(node)
        if key in sizes:
            return sizes[key]
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    ident = (k.tag, k.value)
                    line = k.start_mark.line + 1
                    if ident in seen:
                        raise InputError(
                            Problem(
                                file,
                                line,
                                k.value,
                                f"field '{k.value}' appears twice, on lines {seen[ident]} and "
                                f"{line}; keep one",
                            )
                        )
                    seen[ident] = line
                total += size(k) + size(v)
                if total > MAX_YAML_VALUES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += size(v)
                if total > MAX_YAML_VALUES:
                    break
        if total > MAX_YAML_VALUES:
            raise InputError(
                Problem(
                    file,
                    node.start_mark.line + 1,
                    None,
                    f"the file expands to more than {MAX_YAML_VALUES:,} values "
                    "(aliases repeated inside aliases?); write it out plainly",
                )
            )
        sizes[key] = total
        return total

    size(root)


def _yaml_error(err: yaml.YAMLError, file: str) -> InputError:
    mark = getattr(err, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(err, "problem", None) or str(err)
    if isinstance(err, yaml.reader.ReaderError):
        problem = "the file holds a character YAML does not allow (such as a NUL byte)"
    return InputError(Problem(file, line, None, f"not valid YAML: {problem}"))


def _compose_limited(text: str, file: str) -> yaml.Node | None:
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise InputError(
            Problem(
                file,
                None,
                None,
                f"the file is larger than {MAX_YAML_BYTES // (1024 * 1024)} MB; "
                "a scenario or batch spec is far smaller",
            )
        )
    try:
        loader = _LimitedLoader(text, file)
    except yaml.YAMLError as err:  # the reader refuses NUL and other control characters
        raise _yaml_error(err, file) from None
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_tree(root, file)
        return root
    except yaml.YAMLError as err:
        raise _yaml_error(err, file) from None
    finally:
        loader.dispose()


def load_yaml_text(text: str, file: str = "<yaml>") -> Any:
    """Parse YAML text safely, or raise :class:`InputError` naming ``file`` and the line.

    Only plain data (PyYAML's safe schema). Refused, with a message saying why: files
    over ``MAX_YAML_BYTES``, nesting deeper than ``MAX_YAML_DEPTH``, more than
    ``MAX_YAML_ALIASES`` aliases, aliases that contain themselves, documents that expand
    to more than ``MAX_YAML_VALUES`` values, a key given twice in one mapping and more
    than one document. Used for scenarios, plans and batch specs.
    """
    if not isinstance(text, str):
        raise InputError(Problem(file, None, None, "expected YAML text"))
    root = _compose_limited(text, file)
    if root is None:
        return None
    loader = _LimitedLoader("", file)
    try:
        return loader.construct_document(root)
    except yaml.YAMLError as err:
        raise _yaml_error(err, file) from None
    except (ValueError, OverflowError, TypeError) as err:  # e.g. a timestamp out of range
        reason = str(err)
        if "integer string conversion" in reason:
            reason = "a number has thousands of digits"
        raise InputError(Problem(file, None, None, f"a value cannot be read: {reason}")) from None
    finally:
        loader.dispose()


def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """Map YAML paths to 1-based line numbers, for error messages."""
    index: dict[tuple[Any, ...], int] = {}
    try:
        root = _compose_limited(text, "<yaml>")
    except InputError:
        return index
    visited: set[int] = set()

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        index.setdefault(path, node.start_mark.line + 1)
        if id(node) in visited:  # an alias: its lines are those of the anchor
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = path + (k.value,)
                walk(v, key)
                index[key] = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))

    if root is not None:
        walk(root, ())
    return index


def problems_from_validation(
    err: ValidationError, file: str, text: str | None = None
) -> list[Problem]:
    """Turn a pydantic error into problems naming the YAML path and line."""
    lines = _line_index(text) if text else {}
    problems = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        line = None
        probe = loc
        while probe and line is None:
            line = lines.get(probe)
            probe = probe[:-1]
        if line is None:
            line = lines.get(())
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/scenario.md for the fields allowed)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif "input" in e and e["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg} (got {e['input']!r})"
        problems.append(Problem(file, line, _loc_to_path(loc), msg))
    return problems


def scenario_from_dict(
    data: Mapping[str, Any],
    file: Text = "<scenario>",
    text: str | None = None,
    base_dir: str | None = None,
) -> Scenario:
    """Validate a mapping as a :class:`Scenario`, raising :class:`InputError`."""
    if not isinstance(data, Mapping):
        raise InputError(Problem(file, None, None, "expected a mapping of fields at the top level"))
    payload = dict(data)
    if base_dir is not None:
        payload["base_dir"] = base_dir
    pathway = payload.get("pathway")
    if (
        isinstance(pathway, Mapping)
        and "routing" not in pathway
        and pathway.get("preset") in PRESETS
    ):
        payload["pathway"] = {**pathway, "routing": PRESETS[pathway["preset"]]}
    try:
        return Scenario.model_validate(payload)
    except ValidationError as err:
        raise InputError(problems_from_validation(err, file, text)) from None


def read_yaml(path: str | Path) -> tuple[Any, str]:
    """Read a YAML file for validation: (data, text), or an InputError naming file and line.

    Shared by scenarios, plans and batch specs, so every file reports problems alike.
    """
    path = Path(path)
    try:
        exists, is_dir, is_file = path.exists(), path.is_dir(), path.is_file()
    except (OSError, ValueError) as err:  # a name too long for the file system, say
        reason = getattr(err, "strerror", None) or str(err)
        raise InputError(Problem(str(path), None, None, f"cannot be read ({reason})")) from None
    if not exists:
        raise InputError(Problem(str(path), None, None, "file not found"))
    if is_dir:
        raise InputError(Problem(str(path), None, None, "is a folder; expected a YAML file"))
    if not is_file:  # /dev/zero, a pipe: reading would never end
        raise InputError(
            Problem(str(path), None, None, "is not a regular file; expected a YAML file")
        )
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise InputError(
                Problem(
                    str(path),
                    None,
                    None,
                    f"the file is larger than {MAX_YAML_BYTES // (1024 * 1024)} MB; "
                    "a scenario or batch spec is far smaller",
                )
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(Problem(str(path), None, None, "not a UTF-8 text file")) from None
    except OSError as err:
        raise InputError(
            Problem(str(path), None, None, f"cannot be read ({err.strerror or err})")
        ) from None
    data = load_yaml_text(text, str(path))
    if data is None:
        raise InputError(Problem(str(path), None, None, "the file is empty"))
    return data, text


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    path = Path(path)
    data, text = read_yaml(path)
    return scenario_from_dict(data, file=str(path), text=text, base_dir=str(path.parent.resolve()))


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    return scenario.model_dump(mode="json", exclude={"base_dir"})


def dump_scenario(scenario: Scenario, path: str | Path | None = None) -> str:
    """Write a scenario as YAML (and return the text)."""
    text = yaml.safe_dump(
        scenario_to_dict(scenario), sort_keys=False, allow_unicode=True, width=100
    )
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def with_changes(scenario: Scenario, changes: Mapping[str, Any]) -> Scenario:
    """A new scenario with dotted-path changes applied, re-validated.

    ``with_changes(s, {"demand.growth_factor": 1.1, "budget.revenue_gbp_per_year": 9e7})``
    """
    data = scenario.model_dump(mode="python")
    preset_changed = False
    for dotted, value in changes.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], dict):
                raise InputError(Problem("<changes>", None, dotted, f"no such field '{part}'"))
            node = node[part]
        if parts[-1] not in node:
            raise InputError(Problem("<changes>", None, dotted, f"no such field '{parts[-1]}'"))
        node[parts[-1]] = value
        if dotted == "pathway.preset":
            preset_changed = True
        elif dotted.startswith("pathway.routing"):
            preset_changed = False  # routing given explicitly wins over the preset's
    if preset_changed and data["pathway"]["preset"] in PRESETS:
        # a preset is a set of routing fractions: choosing one brings its routing
        data["pathway"]["routing"] = PRESETS[data["pathway"]["preset"]]
    return scenario_from_dict(data, file="<changes>", base_dir=scenario.base_dir)


def iter_parameters() -> Iterator[dict[str, Any]]:
    """Every tunable parameter with its default, unit and source (for docs and the app)."""
    groups = {
        "demand": DemandParams,
        "pathway": PathwayParams,
        "queues": QueueParams,
        "costs": CostParams,
        "objective.weights": ObjectiveWeights,
    }
    for group, model in groups.items():
        for name, field in model.model_fields.items():
            extra = field.json_schema_extra or {}
            if not isinstance(extra, dict) or "unit" not in extra:
                continue
            yield {
                "group": group,
                "name": name,
                "path": f"{group}.{name}",
                "default": field.default,
                "unit": extra["unit"],
                "source": extra["source"],
                "description": field.description or "",
            }


def parameter_table() -> list[dict[str, Any]]:
    return list(iter_parameters())


# --------------------------------------------------------------------------- limits


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def _bounds(field: Any) -> tuple[float | None, str, float | None, str]:
    lo = lo_op = hi = hi_op = None
    for m in field.metadata:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is None:
                continue
            if attr in ("ge", "gt"):
                lo, lo_op = v, op
            else:
                hi, hi_op = v, op
    return lo, lo_op or "", hi, hi_op or ""


CONTAINER_LIMITS: dict[str, tuple[str, str]] = {
    "demand.hourly_profile": ("24 shares, each >= 0, summing to 1", "share"),
    "demand.weekday_profile": ("7 shares, each >= 0, summing to 1", "share"),
    "pathway.routing": ("each share 0..1, each node's shares summing to 1", "share"),
    "costs.capital_gbp_per_new_site": (
        f"0..{MAX_CAPITAL_GBP_PER_SITE:,.0f} per service",
        "GBP per site opened",
    ),
    "costs.wte_per_unit": (f"0..{MAX_WTE_PER_UNIT:g} per staff group", "WTE per unit"),
    "constraints.workforce_caps_wte": (f"0..{MAX_WORKFORCE_CAP_WTE:,} per staff group", "WTE"),
    "sites": (f"at most {MAX_SITES:,} sites", "sites"),
}
"""Bounds of list and mapping fields, checked by their validators."""


def input_limits() -> list[dict[str, Any]]:
    """Every numeric scenario field with the range accepted at load (for docs and tests).

    Scalars read their bounds from the models; lists and mappings from
    :data:`CONTAINER_LIMITS`. docs/input-limits.md explains each.
    """
    rows: list[dict[str, Any]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            ann = field.annotation
            args = [a for a in get_args(ann) if a is not type(None)] or [ann]
            sub = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if get_origin(ann) is tuple and get_args(ann)[0] is Site:
                sub = [Site]
            if sub:
                walk(sub[0], f"{path}[].") if sub[0] is Site else walk(sub[0], f"{path}.")
                if path in CONTAINER_LIMITS:
                    rng, unit = CONTAINER_LIMITS[path]
                    rows.append({"path": path, "range": rng, "unit": unit, "upper": None})
                continue
            if path in CONTAINER_LIMITS:
                rng, unit = CONTAINER_LIMITS[path]
                rows.append({"path": path, "range": rng, "unit": unit, "upper": None})
                continue
            if not any(a in (int, float) for a in args):
                continue
            lo, lo_op, hi, hi_op = _bounds(field)
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            unit = extra.get("unit") or field.description or ""
            if lo is None or hi is None:
                rng = "unbounded"
            elif lo_op == ">":
                rng = f"> {_num(lo)} and {hi_op} {_num(hi)}"
            else:
                rng = f"{_num(lo)} .. {_num(hi)}"
            rows.append({"path": path, "range": rng, "unit": unit, "upper": hi})

    walk(Scenario, "")
    return rows
