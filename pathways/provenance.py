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
import textwrap

import pandas as pd
import yaml

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
    """The source without a leading basis word ("assumption: x" -> "x")."""
    head, sep, rest = source.partition(":")
    words = (*BASES, "assumption", "user setting")
    return rest.strip() if sep and head.strip().lower() in words else source.strip()


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


class _Dumper(yaml.SafeDumper):
    """Lists of numbers on one line (profiles), so a scenario file stays readable."""


def _represent_list(dumper: yaml.SafeDumper, data: list):
    flow = all(isinstance(v, int | float | str) for v in data) and len(data) > 1
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _comment(text: str) -> str:
    return " ".join(text.split()).replace("#", "No.")


def annotated_yaml(scenario: Scenario) -> str:
    """The scenario as an editable YAML file with every figure's provenance as a comment.

    A header lists where each capacity comes from; each parameter line ends with its
    basis and source (the scenario's own provenance, else its default's).
    """
    sources = figure_sources(scenario).set_index("path")
    head = [f"# {scenario.name}", "#"]
    head += [f"# {line}" for line in textwrap.wrap(_comment(scenario.description), 86)]
    head += ["#", "# Where today's capacities come from:"]
    for key in CAPACITIES:
        row = sources.loc[key]
        head += textwrap.wrap(
            f"{row['figure']}: {row['basis']}: {_comment(row['source'])}", 84,
            initial_indent="#   ", subsequent_indent="#     ",
        )  # fmt: skip
    head += [
        "#",
        "# Each parameter line below ends with its basis (published, calibrated, assumed or",
        "# setting) and source. Edit any value; `pathways evaluate FILE` checks the file and",
        "# names the line of any problem.",
        "",
    ]
    body = yaml.dump(
        scenario.model_dump(mode="json", exclude={"base_dir"}),
        Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
    ).splitlines()  # fmt: skip
    groups = {"demand": "demand", "pathway": "pathway", "queues": "queues", "costs": "costs"}
    out, section, sub = [], None, None
    for line in body:
        indent = len(line) - len(line.lstrip(" "))
        key = (
            line.strip().split(":", 1)[0]
            if ":" in line and not line.lstrip().startswith("-")
            else None
        )
        if indent == 0:
            section, sub = key, None
        elif indent == 2 and section == "objective":
            sub = key
        path = None
        if key and indent == 2 and section in groups:
            path = f"{section}.{key}"
        elif key and indent == 4 and section == "objective" and sub == "weights":
            path = f"objective.weights.{key}"
        if path in sources.index:
            row = sources.loc[path]
            line = f"{line}  # {row['basis']}: {_comment(row['source'])}"
        out.append(line)
    return "\n".join(head + out) + "\n"
