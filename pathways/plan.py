"""Plans: capacity at each site, crisis-line staffing and (optionally) catchments.

A plan is what ``optimise`` returns and what ``evaluate`` judges. Without an
allocation, ``evaluate`` sends each area to its quickest open site.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import Field, ValidationError

from pathways.atomic import write_text_atomic
from pathways.errors import InputError, Problem
from pathways.scenario import (
    SERVICES,
    Capacity,
    Frozen,
    HubCapacity,
    Scenario,
    problems_from_validation,
    read_yaml,
)


class SitePlan(Frozen):
    site_id: str
    capacity: Capacity


class AllocationShare(Frozen):
    """Share of an area's episodes for one service that a site serves."""

    service: Literal["crisis_house", "mobile_team"]
    area_code: str
    site_id: str
    share: float = Field(ge=0, le=1.000001)


STATUSES = ("OPTIMAL", "TIME_LIMIT", "HEURISTIC")
"""How a returned plan was found: proven within the gap; the best found when the clock
stopped the search (with its gap); the heuristic plan, when the solver found nothing
better in time."""


class SolverReport(Frozen):
    status: str
    objective: float | None = None
    best_bound: float | None = None
    gap: float | None = None
    seconds: float | None = None
    solver: str = ""
    iterations: int = 0
    message: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)
    breaches: tuple[str, ...] = ()


class Plan(Frozen):
    """Capacity decisions for one footprint."""

    name: str = "plan"
    sites: tuple[SitePlan, ...] = ()
    hub: HubCapacity = HubCapacity()
    allocation: tuple[AllocationShare, ...] = ()
    solver: SolverReport | None = None
    predicted: dict[str, float] = Field(default_factory=dict)

    def capacity(self, site_id: str) -> Capacity:
        for s in self.sites:
            if s.site_id == site_id:
                return s.capacity
        return Capacity()

    def total(self, service: str) -> int:
        return sum(s.capacity.of(service) for s in self.sites)

    def capacity_table(self) -> pd.DataFrame:
        rows = [
            {"site_id": s.site_id, **{svc: s.capacity.of(svc) for svc in SERVICES}}
            for s in self.sites
        ]
        return pd.DataFrame(rows, columns=["site_id", *SERVICES]).set_index("site_id")

    def allocation_table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [a.model_dump() for a in self.allocation],
            columns=["service", "area_code", "site_id", "share"],
        )


def baseline_plan(scenario: Scenario) -> Plan:
    """Today's capacity as stated in the scenario."""
    return Plan(
        name="current",
        sites=tuple(SitePlan(site_id=s.site_id, capacity=s.capacity) for s in scenario.sites),
        hub=scenario.hub,
    )


def plan_from_dict(data: Any, file: str = "<plan>", text: str | None = None) -> Plan:
    if not isinstance(data, dict):
        raise InputError(Problem(file, None, None, "expected a mapping of fields at the top level"))
    try:
        return Plan.model_validate(data)
    except ValidationError as err:
        raise InputError(problems_from_validation(err, file, text)) from None


INCOMPLETE_HINT = (
    "this is not a complete plan; if it was cut off while being written (a stopped "
    "or crashed run, a full disk, an interrupted copy), write it again: re-run the "
    "command that made it (a batch re-runs such cases when resumed)"
)
"""Added to the problems of a plan file that cannot be read, so the way out is plain."""

NOT_A_FILE = ("file not found", "is a folder", "is not a regular file", "cannot be read")
"""Problems of a path that is not a readable file (see ``read_yaml``)."""


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan YAML file (as written by ``pathways optimise``).

    A file that is not valid YAML or not a valid plan raises an :class:`InputError`
    naming the file, with a last problem saying it may be incomplete and how to
    write it again.
    """
    try:
        data, text = read_yaml(path)
        return plan_from_dict(data, str(path), text)
    except InputError as err:
        if any(p.message.startswith(NOT_A_FILE) for p in err.problems):
            raise  # nothing was read: no hint about a cut-off file
        raise InputError([*err.problems, Problem(str(path), None, None, INCOMPLETE_HINT)]) from None


def plan_text(plan: Plan | Mapping[str, Any]) -> str:
    """A plan as YAML text (the format :func:`load_plan` reads)."""
    data = plan.model_dump(mode="json") if isinstance(plan, Plan) else dict(plan)
    return yaml.safe_dump(data, sort_keys=False, width=100)


def dump_plan(plan: Plan, path: str | Path | None = None) -> str:
    """A plan as YAML text, written to ``path`` when given.

    The file is written atomically (:mod:`pathways.atomic`): a run stopped part way
    leaves the old file or the new one, never a truncated plan.
    """
    text = plan_text(plan)
    if path is not None:
        write_text_atomic(path, text)
    return text


def check_plan(scenario: Scenario, plan: Plan) -> None:
    """Raise if the plan names sites the scenario does not have, or services a site cannot host.

    A site's ``max_capacity`` bounds what the optimiser may choose; a plan above it can
    still be evaluated (a what-if), so it is not checked here.
    """
    problems = []
    for i, sp in enumerate(plan.sites):
        try:
            site = scenario.site(sp.site_id)
        except KeyError:
            problems.append(
                Problem("plan", None, f"sites[{i}].site_id", f"unknown site '{sp.site_id}'")
            )
            continue
        for svc in SERVICES:
            units = sp.capacity.of(svc)
            if units > 0 and svc not in site.services:
                problems.append(
                    Problem(
                        "plan",
                        None,
                        f"sites[{i}].capacity",
                        f"site '{sp.site_id}' cannot host {svc.replace('_', ' ')}",
                    )
                )
    if problems:
        raise InputError(problems)
