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
import contextlib
import functools
import hashlib
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from pathways import geography, uploads
from pathways._paths import data_dir
from pathways.errors import InfeasibleError, InputError, NoPlanInTimeError, Problem
from pathways.plan import Plan, plan_from_dict
from pathways.scenario import (
    CAPACITY_FIELD,
    MAX_YAML_BYTES,
    SERVICES,
    Footprint,
    Scenario,
    load_scenario,
    load_yaml_text,
    scenario_from_dict,
    scenario_to_dict,
    with_changes,
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
JOBS = ("optimise", "frontier", "simulate")
JOB_PARTS = ("request", "cancel", "progress", "running", "status", "watch")
#: Where each job's result goes, and the session store that remembers a job across reloads
#: (``app-<job>-job``: its id on the job board).
JOB_RESULT_STORE = {"optimise": "app-result", "frontier": "app-frontier",
                    "simulate": "app-simulation"}  # fmt: skip
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
    if isinstance(err, NoPlanInTimeError):
        return (
            "The optimiser found no plan in the time allowed.",
            [f"It stopped after {err.seconds:.0f} s without a plan. This does not mean that no "
             "plan meets the constraints: allow more time and run it again."],
        )  # fmt: skip
    if isinstance(err, InfeasibleError):
        return "No plan meets all the constraints together.", list(err.reasons)
    if isinstance(err, FieldError):
        return "There is a problem with a value you entered.", [str(err)]
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


# --------------------------------------------------------------------------- bounds

# Every number a user types has bounds with a unit, and a message that names the field.
# The library's models check their own lower bounds (``ge``/``gt``); the app adds sane
# upper bounds (a growth factor of 10^12 is a typing slip, not a scenario) and checks
# everything before the library sees it, so no entry ever surfaces as a traceback.


class FieldError(ValueError):
    """A typed value that cannot be used; the message names the field and its unit."""


def _plain(v: float) -> str:
    """A bound as people write it: ``5,000``, ``0.5``, ``1,000,000``."""
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.6g}"


@dataclass(frozen=True)
class Bound:
    """What a field may hold: ``lo`` (excluded when ``lo_open``) to ``hi``, in ``unit``.

    ``blank`` says what an empty field means; ``None`` means a value is required.
    """

    label: str
    unit: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    whole: bool = False
    blank: str | None = None

    def describe(self) -> str:
        """``between 0 and 100``, ``greater than 0 and at most 10``, ``at least 1``."""
        lo = None if self.lo is None else _plain(self.lo)
        hi = None if self.hi is None else _plain(self.hi)
        if lo is not None and hi is not None:
            if self.lo_open:
                return f"greater than {lo} and at most {hi}"
            return f"between {lo} and {hi}"
        if lo is not None:
            return f"greater than {lo}" if self.lo_open else f"at least {lo}"
        if hi is not None:
            return f"at most {hi}"
        return "a number"

    def hint(self) -> str:
        """The range and unit, for the text under a field: ``Between 0 and 100 (%).``"""
        text = f"a whole number {self.describe()}" if self.whole else self.describe()
        return f"{text[0].upper()}{text[1:]} ({self.unit})."

    def read(self, raw: Any) -> float | None:
        """The value typed into the field (``None`` for blank, when blank is allowed).

        Raises
        ------
        FieldError
            With a message naming the field, its range and unit, and what was typed.
        """
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if self.blank is not None:
                return None
            raise FieldError(f"{self.label}: enter a number ({self.describe()}, {self.unit}).")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise FieldError(f"{self.label}: '{str(raw)[:40]}' is not a number.")
        if isinstance(raw, str):
            text = raw.strip()
            cleaned = re.sub(r"[£,%\s]", "", text)
        else:
            cleaned = raw
            text = _plain(float(raw)) if math.isfinite(float(raw)) else str(raw)
        try:
            v = float(cleaned)
        except ValueError:
            v = math.nan
        blank = f", or leave it blank for {self.blank}" if self.blank is not None else ""
        if not math.isfinite(v):
            kind = "a whole number" if self.whole else "a number"
            raise FieldError(
                f"{self.label}: '{text}' is not a number. Enter {kind} {self.describe()} "
                f"({self.unit}){blank}."
            )
        below = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
        above = self.hi is not None and v > self.hi
        if below or above:
            raise FieldError(
                f"{self.label} must be {self.describe()} ({self.unit}); you entered {text}."
            )
        if self.whole and not float(v).is_integer():
            raise FieldError(
                f"{self.label} must be a whole number {self.describe()} ({self.unit}); you entered {text}."
            )
        return int(v) if self.whole else v


#: The Optimise page's settings: scenario path -> (bound in the field's unit, scale from
#: the field's unit to the scenario's). Budgets are typed in £ million, shares in %.
SETTING_BOUNDS: dict[str, tuple[Bound, float]] = {
    "budget.revenue_gbp_per_year": (
        Bound("Revenue budget", "£ million a year", 0, 5_000, lo_open=True,
              blank="today's modelled spend"), 1e6),
    "budget.capital_gbp": (
        Bound("Capital for new sites", "£ million", 0, 5_000, blank="no capital limit"), 1e6),
    "objective.targets.oap_bed_days_per_year_max": (
        Bound("Target for out-of-area bed-days", "bed-days a year", 0, 1e7, blank="no target"), 1.0),
    "objective.targets.admissions_per_year_max": (
        Bound("Target for admissions", "admissions a year", 0, 1e7, blank="no target"), 1.0),
    "constraints.mobile_within_standard_share_min": (
        Bound("Mobile responses within the response standard", "%", 0, 100,
              blank="no worse than today"), 0.01),
    "constraints.hub_service_level_min": (
        Bound("Crisis-line calls answered within target", "%", 0, 100,
              blank="no worse than today"), 0.01),
    "constraints.crisis_house_travel_mins": (
        Bound("Crisis-house travel cap", "minutes", 0, 600, lo_open=True, blank="no travel cap"), 1.0),
    "constraints.crisis_house_population_share_min": (
        Bound("Population within the crisis-house travel cap", "%", 0, 100,
              blank="no coverage rule"), 0.01),
    "constraints.equity.max_gap_share": (
        Bound("Allowed shortfall for the most deprived fifth", "percentage points", 0, 100,
              blank="no shortfall"), 0.01),
}  # fmt: skip
TIME_LIMIT = Bound("Time limit", "seconds", 2, 900, blank="30 seconds")
FRONTIER_MAX = Bound("Frontier range", "% above today's cost", 1, 100, blank="15%")
FRONTIER_SECONDS = Bound("Seconds per budget", "seconds", 2, 300, blank="15 seconds")

#: Model parameters in commissioners' words: path -> (label, unit, upper bound).
#: Lower bounds come from the library's models (``ge``/``gt``), and the tighter of the
#: library's upper bound (``le``) and this one applies; a unit of ``None`` takes the
#: library's.
PARAM_INFO: dict[str, tuple[str, str | None, float | None]] = {
    "demand.episodes_per_100k_per_year": ("Crisis episodes per 100,000 people", "episodes a year per 100,000 people", 20_000),
    "demand.relative_rate_0_15": ("Relative crisis rate of children (0-15)", "times the rate at ages 16-59", 5),
    "demand.relative_rate_60_plus": ("Relative crisis rate of people aged 60 and over", "times the rate at ages 16-59", 5),
    "demand.deprivation_ratio": ("Deprivation gradient", "times the rate, most vs least deprived decile", 20),
    "demand.growth_factor": ("Demand growth factor", "multiplier; 1 = today's demand", 10),
    "demand.veterans_share": ("Share of episodes involving veterans", "share, 0 to 1", 1),
    "demand.calls_per_100k_per_year": ("Crisis-line calls per 100,000 people", "calls a year per 100,000 people", 100_000),
    "demand.hourly_profile": ("Calls by hour of day", "share of a day's calls in each hour, 24 values", 1),
    "demand.weekday_profile": ("Calls by day of the week", "share of a week's calls on each day, 7 values from Monday", 1),
    "pathway.preset": ("Routing preset", "name", None),
    "pathway.routing": ("Routing between tiers", "share of each tier's episodes; each row adds up to 1", 1),
    "pathway.crisis_house_full_to_inpatient_share": ("Admitted when no crisis-house place is free", "share, 0 to 1", 1),
    "pathway.crisis_house_max_travel_mins": ("Farthest travel to a crisis house", "minutes by road", 600),
    "queues.inpatient_los_days": ("Inpatient length of stay", "days", 365),
    "queues.inpatient_peakedness": ("Burstiness of admissions", "variance / mean of bed demand; 1 = Poisson", 20),
    "queues.oap_los_days": ("Out-of-area placement length", "days", 365),
    "queues.oap_travel_mins": ("Travel to an out-of-area bed", "minutes by road", 1_440),
    "queues.crisis_house_los_days": ("Crisis-house length of stay", "days", 90),
    "queues.mobile_service_hours": ("Mobile team time per episode", "hours", 24),
    "queues.mobile_dispatch_mins": ("Mobile team dispatch time", "minutes", 720),
    "queues.mobile_standard_urban_mins": ("Mobile response standard, urban areas", "minutes", 1_440),
    "queues.mobile_standard_rural_mins": ("Mobile response standard, rural areas", "minutes", 1_440),
    "queues.mobile_max_utilisation": ("Busiest-hour load of a mobile team, at most", "share of team time, 0 to 1", 1),
    "queues.hub_aht_seconds": ("Crisis-line call handling time", "seconds per call", 7_200),
    "queues.hub_answer_within_seconds": ("Crisis-line answer target", "seconds", 3_600),
    "queues.hub_mean_patience_seconds": ("Time callers wait before hanging up", "seconds, on average", 3_600),
    "queues.s136_per_100k_per_year": ("Section 136 detentions per 100,000 people", "detentions a year per 100,000 people", 2_000),
    "queues.place_of_safety_los_days": ("Place-of-safety stay", "days", 2),
    "costs.inpatient_bed_gbp_per_year": ("Cost of an inpatient bed", "£ a year per funded bed", 2_000_000),
    "costs.crisis_house_place_gbp_per_year": ("Cost of a crisis-house place", "£ a year per place", 2_000_000),
    "costs.mobile_team_gbp_per_year": ("Cost of a mobile crisis team", "£ a year per team on shift 24/7", 20_000_000),
    "costs.handler_position_gbp_per_year": ("Cost of a crisis-line handler position", "£ a year per 8-hour shift position", 2_000_000),
    "costs.place_of_safety_suite_gbp_per_year": ("Cost of a place-of-safety suite", "£ a year per suite", 20_000_000),
    "costs.oap_gbp_per_bed_day": ("Cost of an out-of-area bed-day", "£ per bed-day", 10_000),
    "costs.capital_gbp_per_new_site": ("Capital cost of opening a service", "£ per site opened", 1e9),
    "costs.wte_per_unit": ("Staff per unit of capacity", "whole-time equivalents per bed, place, team, suite or handler", 100),
    "objective.weights.oap_bed_day": ("Weight of an out-of-area bed-day", "weight per bed-day", 1_000),
    "objective.weights.admission": ("Weight of an admission", "out-of-area bed-day equivalents per admission", 1_000),
    "objective.weights.travel_hour": ("Weight of an hour of travel", "out-of-area bed-day equivalents per person-hour", 100),
}  # fmt: skip


def _library_bounds(path: str) -> tuple[float | None, bool, float | None]:
    """The bounds the library's model declares for a parameter: (lower, lower is open, upper)."""
    from pathways import scenario as sc

    group, _, name = path.rpartition(".")
    model = {"demand": sc.DemandParams, "pathway": sc.PathwayParams, "queues": sc.QueueParams,
             "costs": sc.CostParams, "objective.weights": sc.ObjectiveWeights}.get(group)  # fmt: skip
    field = model.model_fields.get(name) if model is not None else None
    lo, lo_open, hi = None, False, None
    for m in getattr(field, "metadata", ()):
        if getattr(m, "gt", None) is not None:
            lo, lo_open = float(m.gt), True
        elif getattr(m, "ge", None) is not None:
            lo = float(m.ge)
        if getattr(m, "le", None) is not None:
            hi = float(m.le)
    return lo, lo_open, hi


def human_unit(unit: str) -> str:
    """A library unit in the app's words (``GBP per OAP bed-day`` -> ``£ per OAP bed-day``)."""
    return re.sub(r"\bGBP\s*", "£", unit)


def human_source(source: str) -> str:
    """A parameter's source without the project's internal file names."""
    text = re.sub(r"\bPARAMETERS\.md:\s*", "", source)
    text = re.sub(r"\s*\(PARAMETERS\.md\)|,\s*PARAMETERS\.md\b", "", text)
    text = text.replace("docs/calibration.md", "the calibration guide")
    text = text.replace("docs/model.md", "the model guide")
    text = re.sub(r"\bGBP\s*", "£", text)
    return re.sub(r"\(\s*\)", "", text).strip(" ,;")


def param_label(path: str) -> str:
    info = PARAM_INFO.get(path)
    if info:
        return info[0]
    return path.rpartition(".")[2].replace("_", " ").capitalize()


def param_bound(path: str, unit: str = "") -> Bound:
    """The bounds of a numeric model parameter (the library's lower, the app's upper)."""
    label, own_unit, hi = PARAM_INFO.get(path, (param_label(path), None, None))
    lo, lo_open, lib_hi = _library_bounds(path)
    # the tighter of the library's upper bound and the app's
    if lib_hi is not None:
        hi = lib_hi if hi is None else min(hi, lib_hi)
    return Bound(label, own_unit or human_unit(unit) or "number", lo, hi, lo_open)


def check_param(path: str, value: Any, unit: str = "") -> Any:
    """A parameter value checked against its bounds (tables: every number in them).

    Raises
    ------
    FieldError
        Naming the parameter, its range and unit.
    """
    bound = param_bound(path, unit)
    if isinstance(value, bool) or path == "pathway.preset":
        return value
    if isinstance(value, int | float | str) or value is None:
        return bound.read(value)
    numbers: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for v in node.values():
                walk(v)
        elif isinstance(node, list | tuple):
            for v in node:
                walk(v)
        else:
            numbers.append(node)

    walk(value)
    table = Bound(bound.label, bound.unit, 0.0, bound.hi)
    for v in numbers:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FieldError(f"{bound.label}: '{v}' is not a number ({bound.unit}).")
        try:
            table.read(v)
        except FieldError:
            raise FieldError(
                f"{bound.label}: every value must be {table.describe()} ({bound.unit}); "
                f"{_plain(float(v)) if math.isfinite(v) else v} is not."
            ) from None
    return value


def apply_settings(
    scenario: Scenario, raw: Mapping[str, Any], flags: Mapping[str, Any] | None = None
) -> tuple[Scenario, dict[str, str]]:
    """The scenario with the Optimise page's settings (``raw``: path -> what was typed).

    ``flags`` are settings that are not typed numbers (objective mode, equity rule on).
    Each field is checked on its own: valid ones are applied, and the others are
    returned as messages by path (the scenario keeps its value for those).
    """
    changes: dict[str, Any] = dict(flags or {})
    errors: dict[str, str] = {}
    for path, value in raw.items():
        bound, scale = SETTING_BOUNDS[path]
        try:
            v = bound.read(value)
        except FieldError as err:
            errors[path] = str(err)
            continue
        if path == "constraints.equity.max_gap_share" and v is None:
            v = 0.0
        changes[path] = None if v is None else round(float(v) * scale, 12)
    if not changes:
        return scenario, errors
    try:
        return with_changes(scenario, changes), errors
    except InputError:
        pass
    # one at a time, so that one bad combination does not block the rest
    current = scenario
    for path, value in changes.items():
        try:
            current = with_changes(current, {path: value})
        except InputError as err:
            label = SETTING_BOUNDS[path][0].label if path in SETTING_BOUNDS else path
            errors[path] = f"{label}: " + "; ".join(p.message for p in err.problems)
    return current, errors


def setting_values(scenario: Scenario) -> dict[str, str]:
    """What each Optimise field shows for a scenario (in the field's unit; blank = unset)."""
    data = scenario.model_dump(mode="json")
    out = {}
    for path, (_bound, scale) in SETTING_BOUNDS.items():
        node: Any = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        out[path] = "" if node is None else field_text(float(node) / scale)
    return out


def field_text(value: float | None) -> str:
    """A number as a field shows it: ``61.7``, ``80``, ``0.05`` (no float noise)."""
    if value is None:
        return ""
    v = round(float(value), 6)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.12g}"


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

    Other ICBs use :func:`pathways.icb.make_icb_scenario`: inpatient beds at real sites
    from NHS England's KH03 returns (published), a length of stay calibrated to the ICB's
    KH03 occupancy, and *assumed* mobile teams, place-of-safety suites, crisis-line staff
    and illustrative candidate sites at population centres.
    """
    from pathways.icb import make_icb_scenario

    code = geography.resolve_icb(code_or_name)
    if code == DEMO_ICB:
        return demo_scenario()
    return make_icb_scenario(code)


def scenario_to_store(scenario: Scenario) -> dict[str, Any]:
    return scenario_to_dict(scenario)


def scenario_from_store(data: Mapping[str, Any] | None) -> Scenario:
    """The session's scenario (the Sussex demo when the session has none).

    The scenario comes back from the browser, so nothing in it is trusted: it is
    re-validated, and any file it names must be one this app stored (see
    :func:`check_scenario_files`).
    """
    if not data:
        return demo_scenario()
    scenario = scenario_from_dict(data, file="scenario")
    check_scenario_files(scenario, current_config().upload_dir)
    return scenario


def check_scenario_files(scenario: Scenario, upload_dir: Path) -> None:
    """Refuse a scenario naming a file outside the app's upload folder.

    The server never opens a path a browser chose: a footprint or travel-matrix file must
    be an absolute path inside ``upload_dir`` once symbolic links are followed (so
    ``../``, other absolute paths, NUL bytes and links out of the folder are refused).
    The message does not say whether such a file exists.
    """
    root = upload_dir.expanduser().resolve()
    for field in ("areas_file", "travel_matrix_file"):
        name = getattr(scenario.footprint, field, None)
        if name is None:
            continue
        ok = "\x00" not in name and Path(name).is_absolute()
        if ok:
            try:
                ok = Path(name).resolve().is_relative_to(root)
            except (OSError, ValueError):
                ok = False
        if not ok:
            raise InputError(
                Problem(
                    "scenario",
                    None,
                    f"footprint.{field}",
                    "this file was not uploaded through the app; upload it again on the "
                    "Footprint page",
                )
            )


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


#: The settings a plan was made under, as the library's ``SolverReport.settings`` names them.
SETTING_KEYS = ("mode", "budget_gbp", "capital_gbp", "oap_bed_days_max", "admissions_max",
                "mobile_within_min", "hub_sl_min", "ch_travel_mins", "ch_pop_share_min",
                "equity_gap", "time_limit_s", "gap_target")  # fmt: skip


def _plain_value(v: Any) -> float | str | None:
    if v is None or isinstance(v, str):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else None


def plan_settings(
    goals: Any = None, report: Any = None, time_limit_s: float | None = None,
    gap_target: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The settings a plan was made under and how the solver ended, as plain values.

    The solver's own record (``plan.solver.settings``) comes first; the resolved goals
    and the run's options fill what it lacks. ``status``, ``gap`` and ``solver_message``
    say how the search ended (``status`` is ``None`` for a plan nobody optimised).
    """
    out: dict[str, Any] = {k: None for k in SETTING_KEYS}
    if goals is not None:
        known = goals.settings() if hasattr(goals, "settings") else dict(vars(goals))
        out.update({k: _plain_value(known.get(k)) for k in SETTING_KEYS if k in known})
    own = dict(getattr(report, "settings", None) or {})
    out.update({k: _plain_value(v) for k, v in own.items() if k in SETTING_KEYS})
    if out["time_limit_s"] is None and time_limit_s is not None:
        out["time_limit_s"] = float(time_limit_s)
    if out["gap_target"] is None and gap_target is not None:
        out["gap_target"] = float(gap_target)
    out["status"] = getattr(report, "status", None)
    out["gap"] = _plain_value(getattr(report, "gap", None))
    out["solver_message"] = getattr(report, "message", "") or ""
    return out


def judge(scenario: Any, cards: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every limit each plan breaks, in commissioners' words (``cards``: name -> Scorecard).

    Judged by :func:`pathways.constraints.breaches` against the scenario's budget and
    standards, with today's scorecard (``cards["current"]``) for standards left at today.
    """
    from pathways.constraints import breaches
    from pathways.instance import Instance, prepare

    inst = scenario if isinstance(scenario, Instance) else prepare(scenario)
    today = cards.get("current")
    return {name: [b.message for b in breaches(inst, card, today)] for name, card in cards.items()}


def result_to_store(
    scenario: Scenario, outcome: Any, seconds: float, time_limit_s: float | None = None,
    gap_target: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """What the session keeps of an :class:`pathways.optimise.OptimiseResult`: the plans,
    their scorecards, the settings the plan was made under and every limit each plan breaks."""
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
        "settings": plan_settings(goals, plan.solver, time_limit_s, gap_target),
        "breaches": judge(scenario, outcome.cards),
    }


def plan_judgement(scenario: Scenario, result: Mapping[str, Any] | None) -> tuple[dict, dict]:
    """(settings of the plan shown, limits each plan breaks by plan name).

    An up-to-date result carries both (made when it was optimised); without one, today's
    capacity is judged against the scenario's budget and standards.
    """
    if result_is_fresh(result, scenario) and "settings" in result and "breaches" in result:
        return dict(result["settings"]), dict(result["breaches"])
    from pathways.constraints import resolve_goals
    from pathways.instance import prepare
    from pathways.kpis import evaluate

    inst = prepare(scenario)
    today = evaluate(inst)
    cards = {"current": today}
    plan = plan_from_result(result) if result_is_fresh(result, scenario) else None
    if plan is not None:  # an older result without its settings: judge it now
        cards["optimised"] = evaluate(inst, plan)
    settings = plan_settings(resolve_goals(inst, today), plan.solver if plan is not None else None)
    return settings, judge(inst, cards)


# --------------------------------------------------------------------------- background jobs

# Dash tracks a background job only for the page load that started it: after a reload
# the browser has forgotten the job, which keeps running. So each job also reports to a
# job board on the server (a disk cache next to Dash's), under a random id that the
# session keeps. A reloaded page finds its job there, shows its progress and result, and
# can cancel it. The board is written by the job's own process and by the server; the
# browser only ever holds the id, never a process id or a path.

JOB_BOARD_DIR = "jobs"
JOB_RUNNING, JOB_DONE, JOB_CANCELLED, JOB_FAILED = "running", "done", "cancelled", "failed"
#: A job with no process of its own that has said nothing for this long is taken as lost.
JOB_SILENT_S = 120


def new_job_id() -> str:
    import secrets

    return secrets.token_urlsafe(16)


def job_config() -> AppConfig:
    """The configuration a background job and the page that watches it share.

    In the server that is the running app's; a job's process (forked from the server)
    may have no request context, so the app Dash registered is asked next.
    """
    try:
        import flask

        if flask.has_app_context() and CONFIG_KEY in flask.current_app.config:
            return flask.current_app.config[CONFIG_KEY]
    except ImportError:  # pragma: no cover - flask comes with dash
        pass
    try:
        import dash

        config = dash.get_app().server.config.get(CONFIG_KEY)
        if config is not None:
            return config
    except Exception:  # noqa: BLE001 - no app registered: fall back to the environment
        pass
    return resolve_config()


class JobBoard:
    """Background jobs' state by job id: running (with progress), done (with its outputs),
    cancelled or failed. Entries expire after ``expire_s`` seconds."""

    def __init__(self, folder: Path, expire_s: float = 6 * 3600):
        import diskcache

        self.cache = diskcache.Cache(str(folder))
        self.expire_s = expire_s

    def __enter__(self) -> JobBoard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cache.close()

    def get(self, job_id: str | None) -> dict[str, Any] | None:
        if not job_id or not isinstance(job_id, str):
            return None
        return self.cache.get(f"job:{job_id}")

    def _put(self, job_id: str, record: dict[str, Any]) -> None:
        self.cache.set(f"job:{job_id}", record, expire=self.expire_s)

    def start(self, job_id: str, kind: str, pid: int | None) -> None:
        """Record a job as running in process ``pid`` (``None``: not a process of its own)."""
        created = None
        if pid is not None:
            import psutil

            created = psutil.Process(pid).create_time()
        now = time.time()
        self._put(job_id, {"kind": kind, "state": JOB_RUNNING, "pid": pid, "created": created,
                           "pct": 0.0, "text": "starting", "started": now, "updated": now})  # fmt: skip

    def progress(self, job_id: str, pct: float, text: str) -> None:
        with self.cache.transact():
            rec = self.get(job_id)
            if rec and rec["state"] == JOB_RUNNING:
                rec.update(pct=float(pct), text=str(text), updated=time.time())
                self._put(job_id, rec)

    def finish(self, job_id: str, outputs: Mapping[str, Any], failed: bool = False) -> bool:
        """Keep a job's outputs; ``False`` when it was cancelled meanwhile (outputs dropped)."""
        with self.cache.transact():
            rec = self.get(job_id)
            if rec is None or rec["state"] != JOB_RUNNING:
                return False
            rec.update(state=JOB_FAILED if failed else JOB_DONE, outputs=dict(outputs), pct=100.0,
                       updated=time.time())  # fmt: skip
            self._put(job_id, rec)
            return True

    def alive(self, rec: Mapping[str, Any]) -> bool:
        """Whether a running job's process is still there (the same process, not a reused id)."""
        pid = rec.get("pid")
        if pid is None:  # not started in a process of its own yet: alive while it reports
            fresh = time.time() - float(rec.get("updated") or 0) < JOB_SILENT_S
            return rec.get("state") == JOB_RUNNING and fresh
        import psutil

        try:
            proc = psutil.Process(int(pid))
            return (
                proc.status() != psutil.STATUS_ZOMBIE
                and abs(proc.create_time() - float(rec.get("created") or 0)) < 1e-3
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
            return False

    def cancel(self, job_id: str | None) -> bool:
        """Mark a running job cancelled and stop its process; ``True`` if it was running."""
        with self.cache.transact():
            rec = self.get(job_id)
            if rec is None or rec["state"] != JOB_RUNNING:
                return False
            alive = self.alive(rec)
            rec.update(state=JOB_CANCELLED, updated=time.time())
            self._put(job_id, rec)
        if alive and rec.get("pid") is not None:
            _stop_process(int(rec["pid"]))
        return True


def _stop_process(pid: int) -> None:
    """Stop a job's process and anything it started (as Dash's own cancel does)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.kill()
        proc.wait(2)
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        pass


def job_board(config: AppConfig | None = None) -> JobBoard:
    return JobBoard((config or job_config()).cache_dir / JOB_BOARD_DIR)


def own_process_pid() -> int | None:
    """This process's id when it is a job's own process (a child of the server), else ``None``.

    A job called in the server's process (as tests do) must never be stopped by killing
    its process.
    """
    import multiprocessing

    try:
        import multiprocess
    except ImportError:  # pragma: no cover - comes with dash[diskcache]
        multiprocess = multiprocessing
    child = (multiprocess.parent_process() is not None) or (
        multiprocessing.parent_process() is not None
    )
    return os.getpid() if child else None


def job_watch(record: Mapping[str, Any] | None, board: JobBoard | None = None) -> dict[str, Any]:
    """What the page shows of a job it is not tracking itself (after a reload)."""
    if record is None:
        return {"state": "missing"}
    state = record.get("state")
    if state == JOB_RUNNING and board is not None and not board.alive(record):
        state = "lost"
    return {"state": state, "pct": float(record.get("pct") or 0), "text": record.get("text") or ""}


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
    # the app keeps uploads as ``<name>-<digest>.gpkg``: show the name the user gave
    stem = re.sub(r"-[0-9a-f]{16}$", "", Path(fp.areas_file or "").stem)
    return f"uploaded areas ({stem or 'file'})"


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


#: Today's capacity at one site, as the sites table names and bounds it. The upper bounds
#: are far above any site in England (the largest assumed unit has 224 beds).
SITE_CAPACITY_BOUNDS: dict[str, Bound] = {
    "inpatient": Bound("Beds", "inpatient beds at the site", 0, 1_000, whole=True, blank="0"),
    "crisis_house": Bound("Crisis-house places", "places at the site", 0, 200, whole=True, blank="0"),
    "mobile_team": Bound("Mobile teams", "teams on shift 24/7 at the base", 0, 50, whole=True, blank="0"),
    "place_of_safety": Bound("Place-of-safety suites", "suites at the site", 0, 20, whole=True, blank="0"),
}  # fmt: skip
SITE_POSITION_BOUNDS = {
    "lat": Bound("Latitude", "degrees north, in Great Britain", 49.0, 61.0),
    "lon": Bound("Longitude", "degrees east, in Great Britain", -9.0, 3.0),
}
SITE_COLUMN_LABELS = {
    "site_id": "Site id", "name": "Name", "status": "Status", "services": "Services allowed",
    **{CAPACITY_FIELD[s]: b.label for s, b in SITE_CAPACITY_BOUNDS.items()},
    "lock": "Lock", "lat": "Latitude", "lon": "Longitude",
}  # fmt: skip


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
            bad("Site id", "the site needs an id")
        if not name:
            bad("Name", "the site needs a name")
        status = str(row.get("status") or "candidate").strip().lower()
        if status not in ("existing", "candidate"):
            bad("Status", f"'{row.get('status')}' is not 'existing' or 'candidate'")
        services, unknown = parse_services(row.get("services"))
        if base is not None and set(services) == set(base.services):
            services = list(base.services)
        for word in unknown:
            bad("Services allowed", f"unknown service '{word}'; use inpatient, crisis house, mobile team "
                            "or place of safety, separated by commas")  # fmt: skip
        capacity = {}
        for svc in SERVICES:
            col = CAPACITY_FIELD[svc]
            bound = SITE_CAPACITY_BOUNDS[svc]
            try:
                v = int(bound.read(row.get(col)) or 0)
            except FieldError as err:
                bad(bound.label, str(err))
                v = 0
            if v > 0 and svc not in services:
                bad(bound.label, f"{bound.label}: {v} given but '{SERVICE_LABELS[svc]}' is not in the "
                                 "site's services allowed")  # fmt: skip
            capacity[col] = v
        lock = str(row.get("lock") or "free to change")
        if lock not in LOCK_OPTIONS:
            bad("Lock", f"'{lock}' is not one of {', '.join(LOCK_OPTIONS)}")
            lock = "free to change"
        position = {}
        for key, bound in SITE_POSITION_BOUNDS.items():
            try:
                position[key] = bound.read(row.get(key))
            except FieldError as err:
                bad(bound.label, str(err))
        lat, lon = position.get("lat"), position.get("lon")
        if lat is None or lon is None:
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
    last = (m.group(2) or "").rpartition(".")[2]
    field = SITE_COLUMN_LABELS.get(last, m.group(2) or "site")
    return Problem(SITE_TABLE, int(m.group(1)) + 1, field, p.message)


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
#: Spreadsheet files people try to upload; the message says how to save them as CSV.
SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
#: Each upload is written to its own new folder here while it is read, then deleted.
INCOMING = "incoming"
#: Left-over raw uploads (from a crash, or kept by earlier versions of the app in
#: ``uploads/<digest>/``) older than this are removed, unless a saved scenario names a
#: file in them. Validated copies of uploaded areas (``uploads/areas/``) are never removed.
RAW_UPLOAD_RETENTION_S = 24 * 3600
_LEGACY_RAW_FOLDER = re.compile(r"^[0-9a-f]{16}$")
PATIENT_LEVEL_NOTE = (
    "the uploaded file was deleted from the server at once; nothing from it was kept"
)


def decode_upload(contents: str | None, filename: str | None) -> tuple[str, bytes]:
    """The safe file name and the bytes of a ``dcc.Upload`` payload (``data:...;base64,...``).

    Refuses, before decoding, a file type the app does not read and a file larger than
    the upload limit (:func:`pathways.uploads.max_upload_bytes`).
    """
    name = uploads.safe_file_name(filename, "upload")
    suffix = Path(name).suffix.lower()
    if suffix in SPREADSHEET_SUFFIXES:
        raise InputError(Problem(name, None, None, "Excel and other spreadsheet files cannot be "
                                 "read directly: in Excel use File > Save As > 'CSV UTF-8 (comma "
                                 "delimited)' and upload the .csv file"))  # fmt: skip
    if suffix not in UPLOAD_SUFFIXES:
        raise InputError(Problem(name, None, None, f"unsupported file type '{suffix or '(none)'}'; "
                                 f"expected one of {', '.join(UPLOAD_SUFFIXES)}"))  # fmt: skip
    if not isinstance(contents, str) or "," not in contents:
        raise InputError(Problem(name, None, None, "the file could not be read"))
    b64 = contents.split(",", 1)[1]
    # every 4 base64 characters carry 3 bytes: refuse a large file before decoding it
    uploads.check_size(len(b64) * 3 // 4 - b64[-2:].count("="), name)
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:  # binascii.Error
        raise InputError(Problem(name, None, None, "the file could not be read")) from None
    if not raw:
        raise InputError(Problem(name, None, None, "the file is empty"))
    return name, raw


SCENARIO_SUFFIXES = (".yaml", ".yml")


def scenario_from_upload(contents: str | None, filename: str | None) -> Scenario:
    """A scenario file uploaded in the browser, validated like one read from disk.

    Problems name the file, line and field. Like every scenario that comes from the
    browser, it may only name area or travel-matrix files this app stored.
    """
    name = uploads.safe_file_name(filename, "scenario.yaml")
    if Path(name).suffix.lower() not in SCENARIO_SUFFIXES:
        raise InputError(Problem(name, None, None, "expected a scenario file ending .yaml or "
                                 ".yml (as the Export page's 'Scenario (YAML)' gives)"))  # fmt: skip
    if not isinstance(contents, str) or "," not in contents:
        raise InputError(Problem(name, None, None, "the file could not be read"))
    b64 = contents.split(",", 1)[1]
    if len(b64) * 3 // 4 > MAX_YAML_BYTES:
        raise InputError(Problem(name, None, None, f"the file is larger than "
                                 f"{MAX_YAML_BYTES // (1024 * 1024)} MB; a scenario is far smaller"))  # fmt: skip
    try:
        text = base64.b64decode(b64, validate=True).decode("utf-8-sig")
    except ValueError:  # bad base64 or not UTF-8
        raise InputError(Problem(name, None, None, "not a UTF-8 text file")) from None
    data = load_yaml_text(text, name)
    if data is None:
        raise InputError(Problem(name, None, None, "the file is empty"))
    scenario = scenario_from_dict(data, file=name, text=text)
    check_scenario_files(scenario, current_config().upload_dir)
    return scenario


def _write_new(path: Path, raw: bytes) -> None:
    """Create ``path`` (never through a symbolic link, never over an existing file)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def save_upload(contents: str, filename: str, folder: Path) -> Path:
    """Write a ``dcc.Upload`` payload to ``folder/<hash>/<safe name>`` and return the path.

    The same content gives the same file. The app itself reads uploads through
    :func:`received_upload`, which keeps nothing.
    """
    name, raw = decode_upload(contents, filename)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    target = folder / digest / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(target.parent, folder):
        raise InputError(Problem(name, None, None, "the file could not be stored"))
    if not target.exists():
        _write_new(target, raw)
    return target


@contextlib.contextmanager
def received_upload(contents: str, filename: str | None, folder: Path):
    """The uploaded file on disk while the ``with`` block reads it, deleted afterwards.

    The file goes to a new folder with a random name under ``folder/incoming``, with a
    safe version of the user's file name (so messages can name it); whatever happens
    (accepted, refused, an error), the folder is deleted when the block ends, so raw
    uploads never pile up. Left-overs older than :data:`RAW_UPLOAD_RETENTION_S` are
    cleaned on the way (:func:`purge_stale_uploads`). A refusal of patient-level data
    says that the file was deleted.
    """
    name, raw = decode_upload(contents, filename)
    incoming = folder / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    purge_stale_uploads(folder)
    private = Path(tempfile.mkdtemp(dir=incoming))
    try:
        if not _inside(private, folder):
            raise InputError(Problem(name, None, None, "the file could not be stored"))
        path = private / name
        _write_new(path, raw)
        try:
            yield path
        except InputError as err:
            if any(uploads.AGGREGATE_ONLY in p.message for p in err.problems):
                raise InputError(
                    [*err.problems, Problem(name, None, None, PATIENT_LEVEL_NOTE)]
                ) from None
            raise
    finally:
        shutil.rmtree(private, ignore_errors=True)


def saved_scenario_files(config: AppConfig | None = None) -> set[Path]:
    """Every file a saved scenario names (areas and travel matrices), resolved."""
    found: set[Path] = set()
    with contextlib.closing(open_store(config)) as store:
        for row in store.list_scenarios():
            fp = store.load_scenario(row["name"], team=row["team"]).footprint
            for name in (fp.areas_file, fp.travel_matrix_file):
                if name:
                    with contextlib.suppress(OSError, ValueError):
                        found.add(Path(name).expanduser().resolve())
    return found


def _age_s(folder: Path, now: float) -> float:
    """Seconds since anything in ``folder`` last changed."""
    stamps = [folder.lstat().st_mtime]
    with contextlib.suppress(OSError):
        stamps += [p.lstat().st_mtime for p in folder.rglob("*")]
    return now - max(stamps)


def stale_upload_folders(folder: Path, max_age_s: float = RAW_UPLOAD_RETENTION_S,
                         now: float | None = None) -> list[Path]:  # fmt: skip
    """Raw-upload folders older than ``max_age_s``: ``incoming/*`` and the ``<digest>/``
    folders earlier versions kept. Never ``areas/`` (the validated copies scenarios use)."""
    now = time.time() if now is None else now
    candidates: list[Path] = []
    with contextlib.suppress(OSError):
        candidates += [p for p in folder.iterdir() if _LEGACY_RAW_FOLDER.match(p.name)]
    with contextlib.suppress(OSError):
        candidates += list((folder / INCOMING).iterdir())
    return sorted(
        p for p in candidates
        if p.is_dir() and not p.is_symlink() and _age_s(p, now) > max_age_s
    )  # fmt: skip


def purge_stale_uploads(
    folder: Path, max_age_s: float = RAW_UPLOAD_RETENTION_S, keep=saved_scenario_files,
    now: float | None = None,
) -> list[Path]:  # fmt: skip
    """Delete stale raw uploads (see :func:`stale_upload_folders`); return what was deleted.

    Saved work is never lost: a folder holding a file that a saved scenario names
    (``keep()``) stays, and if the saved scenarios cannot be read, nothing is deleted.
    """
    stale = stale_upload_folders(folder, max_age_s, now)
    if not stale:
        return []
    try:
        kept = keep()
    except Exception:  # noqa: BLE001 - unsure what is saved: delete nothing
        log.warning(
            "saved scenarios could not be read; old uploads were not cleaned", exc_info=True
        )
        return []
    removed = []
    for path in stale:
        root = path.resolve()
        if any(k.is_relative_to(root) for k in kept):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        log.info("removed %d old raw upload folder(s) from %s", len(removed), folder)
    return removed


def store_areas(areas: gpd.GeoDataFrame, folder: Path, source: str) -> Path:
    """Keep a validated, complete copy of uploaded areas as GeoPackage (for the scenario)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = areas.reset_index().rename(columns={"area_name": "name", "pop_total": "population"})
    keep = ["area_code", "name", "population", "imd_decile", "rural", "geometry",
            *(c for c in geography.POP_AGE_COLUMNS if c in out.columns)]  # fmt: skip
    out = gpd.GeoDataFrame(out[keep], geometry="geometry", crs=areas.crs)
    digest = hashlib.sha256(out.to_json().encode()).hexdigest()[:16]
    stem = Path(uploads.safe_file_name(source, "areas")).stem or "areas"
    path = folder / f"{stem}-{digest}.gpkg"
    if not path.exists():
        out.to_file(path, driver="GPKG", layer="areas")
    return path
