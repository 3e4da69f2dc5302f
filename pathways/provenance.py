"""Which figures are published, calibrated or assumed: one answer for every face.

Every default parameter carries its source (``pathways.scenario.param``); a scenario
may say where its capacities and any overridden parameter come from
(``Scenario.provenance``). :func:`basis` reduces a source to one word, and
:func:`figure_sources` lists, for one scenario, every capacity and rate with its basis
and source, for the app and the exports.
"""

from __future__ import annotations

import json
import re

import pandas as pd

from pathways.scenario import Scenario, parameter_table

BASES = ("published", "calibrated", "assumed", "setting")
"""published: a published figure (with its source); calibrated: fitted so the model
reproduces published totals; assumed: a modelling assumption; setting: the user's choice."""

CAPACITIES = {
    "inpatient_beds": "Inpatient beds",
    "crisis_house_places": "Crisis-house places",
    "mobile_teams": "Mobile crisis teams",
    "place_of_safety_suites": "Place-of-safety suites",
    "hub_handlers": "Crisis-line handlers",
}

_ASSUMED = re.compile(r"\bassum|not confirmed by a published|illustrative|\bset locally\b", re.I)


def basis(source: str) -> str:
    """One of :data:`BASES` for a source text (its first word when it names one)."""
    text = source.strip()
    head = text.split(":", 1)[0].strip().lower()
    if head in BASES:
        return head
    if head.startswith("calibrated"):
        return "calibrated"
    if head.startswith(("user setting", "default")):
        return "setting"
    if _ASSUMED.search(text):
        return "assumed"
    return "published"


def _detail(source: str) -> str:
    head, sep, rest = source.partition(":")
    return rest.strip() if sep and head.strip().lower() in BASES else source.strip()


def value_at(scenario: Scenario, path: str):
    """The scenario's value of a dotted parameter path (``queues.inpatient_los_days``)."""
    node = scenario.model_dump(mode="json")
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _json(value):
    return json.loads(json.dumps(value, default=list))


def parameter_source(scenario: Scenario, path: str, default_source: str, default) -> str:
    """Where the scenario's value of a parameter comes from.

    The scenario's own provenance if it gives one; the default's source while the value
    is the default; otherwise a setting of this scenario.
    """
    given = scenario.provenance.get(path)
    if given:
        return given
    if _json(value_at(scenario, path)) != _json(default):
        return "setting: changed from the default in this scenario"
    return default_source


def figure_sources(scenario: Scenario) -> pd.DataFrame:
    """Every capacity and parameter of ``scenario``: figure, path, basis, source."""
    rows = []
    for key, label in CAPACITIES.items():
        src = scenario.provenance.get(key) or (
            "assumed: set in the scenario file; no published source given for it"
        )
        rows.append({"figure": label, "path": key, "basis": basis(src), "source": _detail(src)})
    for p in parameter_table():
        src = parameter_source(scenario, p["path"], p["source"], p["default"])
        rows.append({"figure": p["name"], "path": p["path"], "basis": basis(src),
                     "source": _detail(src)})  # fmt: skip
    return pd.DataFrame(rows, columns=["figure", "path", "basis", "source"])
