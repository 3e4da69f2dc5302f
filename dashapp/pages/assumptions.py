"""Step 3, Assumptions: every model parameter with its default, unit and source."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update, stringify_id
from dash.exceptions import PreventUpdate

from dashapp.components import basis_tag, error_message, message, page_header, user_trigger
from dashapp.state import (
    FieldError,
    check_param,
    defaults_scenario,
    human_source,
    param_bound,
    param_label,
    scenario_from_store,
    scenario_to_store,
    with_sections,
)
from pathways.errors import InputError
from pathways.provenance import basis, parameter_source
from pathways.scenario import Scenario, apply_preset, parameter_table, with_changes

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/assumptions", name="Assumptions",
                   title="Assumptions - Crisis pathway planner", order=3)  # fmt: skip

#: Parameters grouped by the tier of the crisis pathway they describe (first match wins).
TIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Someone to call: the crisis line", ("calls_per_100k", "hourly_profile", "hub_", "handler_")),
    ("Someone to respond: mobile crisis teams", ("mobile_",)),
    ("Somewhere to go: crisis houses", ("crisis_house",)),
    ("Places of safety (section 136)", ("s136", "place_of_safety")),
    ("Last resort: inpatient beds and out-of-area placements", ("inpatient", "oap_")),
    ("Who needs help: demand", ("demand.",)),
    ("Routing between tiers", ("pathway.",)),
    ("Capital and workforce", ("capital_", "wte_")),
    ("What the optimiser weighs", ("objective.weights.",)),
)
OTHER_TIER = "Other parameters"
READ_ONLY = frozenset({"pathway.preset"})


def tier_of(path: str) -> str:
    if path.startswith("objective.weights."):
        return "What the optimiser weighs"
    for title, keys in TIERS:
        if any(k in path for k in keys):
            return title
    return OTHER_TIER


def value_at(scenario: Scenario, path: str) -> Any:
    node: Any = scenario.model_dump(mode="json")
    for part in path.split("."):
        node = node[part]
    return node


def _is_number(default: Any) -> bool:
    return isinstance(default, int | float) and not isinstance(default, bool)


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _json_text(value: Any) -> str:
    if isinstance(value, list) and all(_is_number(v) for v in value):
        return json.dumps(value)
    return json.dumps(value, indent=1)


def parameter_rows(scenario: Scenario) -> list[dict[str, Any]]:
    """Parameters with the scenario's value, grouped by tier (in display order)."""
    rows = []
    for p in parameter_table():
        default = json.loads(json.dumps(p["default"], default=list))
        rows.append(
            {
                **p,
                "default": default,
                "value": value_at(scenario, p["path"]),
                "tier": tier_of(p["path"]),
                "source": parameter_source(scenario, p["path"], p["source"], p["default"]),
            }
        )
    order = {t: i for i, (t, _) in enumerate(TIERS)}
    return sorted(rows, key=lambda r: order.get(r["tier"], len(order)))


def _field(row: Mapping[str, Any]) -> html.Div:
    path = row["path"]
    label = param_label(path)
    bound = param_bound(path, row["unit"])
    changed = not _same(row["value"], row["default"])
    control_id: dict[str, str] | None = None
    if path in READ_ONLY:
        control = html.Div(str(row["value"]), className="readonly-value")
    elif _is_number(row["default"]):
        control_id = {"type": "assumptions-num", "path": path}
        control = dcc.Input(
            id=control_id,
            type="number",
            value=row["value"],
            debounce=True,
            step="any",
            min=bound.lo,
            max=bound.hi,
            className="num-input",
        )
    else:
        control_id = {"type": "assumptions-json", "path": path}
        control = dcc.Textarea(id=control_id, value=_json_text(row["value"]), className="json-input",
                               rows=3 if isinstance(row["value"], list) else 6)  # fmt: skip
    default = f"{row['default']:,g}" if _is_number(row["default"]) else "see the source"
    range_text = bound.hint() if _is_number(row["default"]) else None
    return html.Div(
        [
            html.Div([html.Label(label, className="param-name",
                                 htmlFor=stringify_id(control_id) if control_id else None),
                      html.Span("changed" if changed else None, className="changed-tag",
                                id={"type": "assumptions-tag", "path": path}),
                      html.Div(row["description"], className="param-desc")], className="param-label"),
            html.Div([control, html.Div(id={"type": "assumptions-err", "path": path}, className="field-error",
                                        role="alert")], className="param-control"),
            html.Div([html.Div([html.Span("Unit: ", className="muted"), bound.unit]),
                      html.Div([html.Span("Default: ", className="muted"), default]),
                      html.Div([html.Span("Allowed: ", className="muted"), range_text]) if range_text else None,
                      html.Div([html.Span("Source: ", className="muted"), basis_tag(basis(row["source"])),
                                " ", human_source(row["source"])], className="param-source"),
                      html.Div([html.Span("Name in scenario files: ", className="muted"),
                                html.Code(path, className="param-path")], className="param-file-name")],
                     className="param-meta"),
        ],
        className="param-row" + (" is-changed" if changed else ""),
    )  # fmt: skip


def form(scenario: Scenario) -> list[html.Details]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in parameter_rows(scenario):
        groups.setdefault(row["tier"], []).append(row)
    out = []
    for k, (title, rows) in enumerate(groups.items()):
        n_changed = sum(not _same(r["value"], r["default"]) for r in rows)
        summary = f"{title} ({len(rows)} parameters" + (
            f", {n_changed} changed)" if n_changed else ")"
        )
        out.append(html.Details([html.Summary(summary), *[_field(r) for r in rows]], open=k == 0,
                                className="param-group"))  # fmt: skip
    return out


def layout(**_query: str) -> html.Div:
    return html.Div(
        [
            page_header(
                "Assumptions",
                "Every number the model uses, with its default, unit and source. Change a value and "
                "press Enter or move to the next field; invalid entries are explained next to the field.",
            ),
            html.Div(
                [
                    html.Span("Routing presets:", className="toolbar-label"),
                    html.Button(
                        "NHS default", id="assumptions-preset-nhs", className="button secondary"
                    ),
                    html.Button(
                        "Crisis Now",
                        id="assumptions-preset-crisis-now",
                        className="button secondary",
                    ),
                    html.Button(
                        "Reset all to defaults", id="assumptions-reset", className="button warning"
                    ),
                ],
                className="toolbar panel",
            ),  # fmt: skip
            dcc.Loading(html.Div(id="assumptions-message", **{"aria-live": "polite"})),
            dcc.Loading(html.Div(id="assumptions-form")),
            dcc.Store(id="assumptions-init", data=True),
        ]
    )


@callback(Output("assumptions-form", "children"), Input("assumptions-init", "data"),
          State("app-scenario", "data"))  # fmt: skip
def on_init(_init, scenario_data):
    try:
        return form(scenario_from_store(scenario_data))
    except Exception as err:  # noqa: BLE001
        log.exception("assumptions form failed")
        return error_message(err)


def apply_edits(
    scenario: Scenario, numbers: Mapping[str, Any], texts: Mapping[str, str | None]
) -> tuple[Scenario, dict[str, str], int]:
    """Apply each changed field on its own; returns (scenario, errors by path, changes applied)."""
    errors: dict[str, str] = {}
    applied = 0
    current = scenario
    units = {p["path"]: p["unit"] for p in parameter_table()}
    for path, raw in [*numbers.items(), *texts.items()]:
        if path in texts:
            try:
                value = json.loads(raw or "")
            except json.JSONDecodeError as err:
                errors[path] = (
                    f"Not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})."
                )
                continue
        else:
            value = raw
        try:
            value = check_param(path, value, units.get(path, ""))
        except FieldError as err:
            errors[path] = str(err)
            continue
        if _same(value, value_at(current, path)):
            continue
        try:
            current = with_changes(current, {path: value})
            applied += 1
        except InputError as err:
            errors[path] = f"{param_label(path)}: " + "; ".join(p.message for p in err.problems)
    return current, errors, applied


@callback(
    Output("app-scenario", "data", allow_duplicate=True),
    Output("assumptions-form", "children", allow_duplicate=True),
    Output({"type": "assumptions-err", "path": ALL}, "children"),
    Output({"type": "assumptions-tag", "path": ALL}, "children"),
    Output("assumptions-message", "children"),
    Input({"type": "assumptions-num", "path": ALL}, "value"),
    Input({"type": "assumptions-json", "path": ALL}, "n_blur"),
    Input("assumptions-preset-nhs", "n_clicks"),
    Input("assumptions-preset-crisis-now", "n_clicks"),
    Input("assumptions-reset", "n_clicks"),
    State({"type": "assumptions-json", "path": ALL}, "value"),
    State("app-scenario", "data"),
    prevent_initial_call=True,
)
def on_edit(numbers, _blurs, _nhs, _cn, _reset, texts, scenario_data):
    try:
        err_ids = [str(o["id"]["path"]) for o in ctx.outputs_list[2]]
        num_ids = [str(i["id"]["path"]) for i in ctx.inputs_list[0]]
        json_ids = [str(s["id"]["path"]) for s in ctx.states_list[0]]
    except (KeyError, TypeError, IndexError):  # not what this page's fields send
        raise PreventUpdate from None
    trigger = user_trigger()
    try:
        return edit(trigger, dict(zip(num_ids, numbers, strict=True)),
                    dict(zip(json_ids, texts, strict=True)), err_ids, scenario_data)  # fmt: skip
    except Exception as err:  # noqa: BLE001
        log.exception("assumption edit failed")
        keep = [no_update] * len(err_ids)
        return no_update, no_update, keep, keep, error_message(err)


def edit(trigger: Any, numbers: dict[str, Any], texts: dict[str, str | None], err_ids: list[str],
         scenario_data: dict | None) -> tuple:  # fmt: skip
    """Returns (scenario, form, error texts and 'changed' tags in ``err_ids`` order, message).

    Presets and reset re-draw the whole form; single edits only update the errors and tags
    (so the field the user moves to keeps its focus).
    """
    scenario = scenario_from_store(scenario_data)
    if trigger in ("assumptions-preset-nhs", "assumptions-preset-crisis-now"):
        preset = "nhs_default" if trigger == "assumptions-preset-nhs" else "crisis_now"
        new = with_sections(
            scenario, pathway=apply_preset(scenario.pathway, preset).model_dump(mode="json")
        )
        label = "NHS default" if preset == "nhs_default" else "Crisis Now"
        keep = [no_update] * len(err_ids)  # wildcard outputs take one value per field
        return (scenario_to_store(new), form(new), keep, keep,
                message(f"Routing set to the {label} preset.", "success"))  # fmt: skip
    if trigger == "assumptions-reset":
        new = defaults_scenario(scenario)
        keep = [no_update] * len(err_ids)
        return (scenario_to_store(new), form(new), keep, keep,
                message("Every parameter is back at its default.", "success"))  # fmt: skip
    new, errors, applied = apply_edits(scenario, numbers, texts)
    err_out = [errors.get(p) for p in err_ids]
    if errors:
        note = message(f"{len(errors)} entr{'y' if len(errors) == 1 else 'ies'} could not be used (see the "
                       f"field{'s' if len(errors) > 1 else ''} marked in red)"
                       + (f"; {applied} other change(s) applied." if applied else "."), "warning")  # fmt: skip
    elif applied:
        note = message(f"{applied} change{'s' if applied > 1 else ''} applied.", "success")
    else:
        note = no_update
    changed = changed_paths(new)
    tags = ["changed" if p in changed else None for p in err_ids]
    return (scenario_to_store(new) if applied else no_update), no_update, err_out, tags, note


def changed_paths(scenario: Scenario) -> set[str]:
    """Parameters whose value differs from the default."""
    return {r["path"] for r in parameter_rows(scenario) if not _same(r["value"], r["default"])}
