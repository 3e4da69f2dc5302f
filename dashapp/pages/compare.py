"""Step 6, Compare: save scenarios and plans by name, and compare saved plans side by side."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import dash
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from dashapp import figures
from dashapp.components import (
    CHART_CONFIG,
    data_table_style,
    error_message,
    fmt_value,
    kpi_label,
    message,
    page_header,
    user_trigger,
)
from dashapp.state import (
    AppConfig,
    current_config,
    open_store,
    plan_from_result,
    result_is_fresh,
    scenario_from_store,
    scenario_to_store,
)
from pathways.errors import InputError
from pathways.kpis import HEADLINE_KPIS, evaluate
from pathways.plan import baseline_plan

log = logging.getLogger(__name__)

dash.register_page(
    __name__, path="/compare", name="Compare", title="Compare - Crisis pathway planner", order=6
)

SAVED_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("Plan", "name"), ("Scenario", "scenario_name"), ("Saved", "created_at"), ("By", "user"))]  # fmt: skip


def layout(**_query: str) -> html.Div:
    style = data_table_style()
    return html.Div(
        [
            page_header(
                "Save and compare",
                "Save this session's scenario and plan under a name (kept across restarts), then "
                "compare two or more saved plans side by side.",
            ),  # fmt: skip
            html.Div(
                [
                    html.Label("Name", htmlFor="compare-name"),
                    html.Div(
                        [
                            dcc.Input(
                                id="compare-name",
                                type="text",
                                placeholder="e.g. Sussex +4M crisis houses",
                                maxLength=100,
                                className="text-input",
                                debounce=False,
                            ),
                            html.Button(
                                "Save scenario and plan",
                                id="compare-save",
                                className="button primary",
                            ),
                        ],
                        className="input-row",
                    ),
                    html.Div(
                        "Saves the scenario and, if it is up to date, the optimised plan; otherwise "
                        "today's capacity as the plan.",
                        className="hint",
                    ),
                    dcc.Loading(html.Div(id="compare-save-message", **{"aria-live": "polite"})),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Saved plans", className="h3"),
                    dash_table.DataTable(
                        id="compare-saved",
                        data=[],
                        columns=SAVED_COLUMNS,
                        row_selectable="multi",
                        selected_rows=[],
                        page_size=10,
                        **style,
                    ),
                    html.Div(
                        [
                            html.Button(
                                "Compare selected", id="compare-run", className="button primary"
                            ),
                            html.Button(
                                "Open selected in this session",
                                id="compare-load",
                                className="button secondary",
                            ),
                            html.Button(
                                "Delete selected", id="compare-delete", className="button warning"
                            ),
                        ],
                        className="button-row",
                    ),
                    dcc.Loading(html.Div(id="compare-message", **{"aria-live": "polite"})),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Side by side", className="h3"),
                    dash_table.DataTable(id="compare-table", data=[], columns=[], **style),
                    dcc.Graph(
                        id="compare-chart",
                        figure=figures.compare_chart({}, []),
                        config=CHART_CONFIG,
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            dcc.Store(id="compare-refresh", data=0),
        ]
    )


def save(
    name: str | None, scenario_data: dict | None, result: dict | None, config: AppConfig
) -> tuple[Any, bool]:
    """Save the session's scenario and plan as ``name``: returns (message, saved)."""
    name = (name or "").strip()
    if not name:
        return message("Type a name first.", "warning"), False
    scenario = scenario_from_store(scenario_data)
    fresh = result_is_fresh(result, scenario)
    plan = plan_from_result(result) if fresh else None
    if plan is not None:
        card = result["cards"].get("optimised") or evaluate(scenario, plan).to_dict()
        what = "the optimised plan"
    else:
        plan = baseline_plan(scenario).model_copy(update={"name": "current"})
        card = evaluate(scenario).to_dict()
        what = "today's capacity"
    store = open_store(config)
    try:
        store.save_scenario(name, scenario)
        store.save_plan(name, name, plan, scorecard=card)
    finally:
        store.close()
    return message(f"Saved scenario '{name}' with {what}.", "success"), True


@callback(
    Output("compare-save-message", "children"),
    Output("compare-refresh", "data"),
    Input("compare-save", "n_clicks"),
    Input("compare-name", "n_submit"),
    State("compare-name", "value"),
    State("app-scenario", "data"),
    State("app-result", "data"),
    State("compare-refresh", "data"),
    prevent_initial_call=True,
)
def on_save(_n, _submit, name, scenario_data, result, token):
    try:
        note, saved = save(name, scenario_data, result, current_config())
        return note, (token or 0) + 1 if saved else no_update
    except InputError as err:
        return error_message(err), no_update
    except Exception as err:  # noqa: BLE001
        log.exception("save failed")
        return error_message(err), no_update


def saved_rows(config: AppConfig) -> list[dict[str, Any]]:
    store = open_store(config)
    try:
        plans = store.list_plans()
    finally:
        store.close()
    return [{"name": p["name"], "scenario_name": p["scenario_name"], "created_at": _when(p["created_at"]),
             "user": p["user"]} for p in plans]  # fmt: skip


def _when(iso: str | None) -> str:
    """``2026-11-26T12:50:40.93+00:00`` as ``2026-11-26 12:50 UTC``."""
    if not iso:
        return ""
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    zone = " UTC" if t.utcoffset() == dt.timedelta(0) else ""
    return t.strftime("%Y-%m-%d %H:%M") + zone


def compare(names: Sequence[str], config: AppConfig) -> tuple[list[dict], list[dict], Any]:
    """Headline KPIs of saved plans side by side: (rows, columns, chart)."""
    store = open_store(config)
    kpis: dict[str, dict[str, float]] = {}
    try:
        listed = {p["name"]: p for p in store.list_plans()}
        for name in names:
            plan, card = store.load_plan(name)
            if not card or "kpis" not in card:
                scenario = store.load_scenario(listed[name]["scenario_name"])
                card = evaluate(scenario, plan).to_dict()
            kpis[name] = card["kpis"]
    finally:
        store.close()
    keys = [k for k in HEADLINE_KPIS if all(k in v for v in kpis.values())]
    rows = [{"kpi": kpi_label(k), **{n: fmt_value(k, kpis[n].get(k)) for n in kpis}} for k in keys]
    cols = [{"name": "Measure", "id": "kpi"}] + [{"name": n, "id": n} for n in kpis]
    chart_keys = [k for k in keys if k not in ("inpatient_occupancy",)]
    return rows, cols, figures.compare_chart(kpis, chart_keys)


def load(name: str, config: AppConfig) -> tuple[dict, dict]:
    """A saved scenario and plan as session stores (scenario, result)."""
    store = open_store(config)
    try:
        listed = {p["name"]: p for p in store.list_plans()}
        plan, card = store.load_plan(name)
        scenario = store.load_scenario(listed[name]["scenario_name"])
    finally:
        store.close()
    today = evaluate(scenario).to_dict()
    result = {
        "scenario_fingerprint": scenario.fingerprint(), "scenario_name": scenario.name,
        "plan": plan.model_dump(mode="json"), "baselines": {},
        "cards": {"current": today, "optimised": card or evaluate(scenario, plan).to_dict()},
        "objectives": {}, "budget_gbp": None, "mode": scenario.objective.mode, "seconds": None,
    }  # fmt: skip
    if plan.name == "current":
        result = None
    return scenario_to_store(scenario), result


@callback(
    Output("compare-saved", "data"),
    Output("compare-saved", "selected_rows"),
    Output("compare-table", "data"),
    Output("compare-table", "columns"),
    Output("compare-chart", "figure"),
    Output("compare-message", "children"),
    Output("app-scenario", "data", allow_duplicate=True),
    Output("app-result", "data", allow_duplicate=True),
    Input("compare-refresh", "data"),
    Input("compare-run", "n_clicks"),
    Input("compare-load", "n_clicks"),
    Input("compare-delete", "n_clicks"),
    State("compare-saved", "data"),
    State("compare-saved", "selected_rows"),
    prevent_initial_call="initial_duplicate",
)
def on_saved(_refresh, _run, _load, _delete, rows, selected):
    return act(user_trigger(), rows or [], selected or [], current_config())


def act(trigger: str | None, rows: list[dict], selected: list[int], config: AppConfig) -> tuple:
    """List, compare, open or delete saved plans (8 outputs, see ``on_saved``)."""
    keep = (no_update,) * 4
    names = [rows[i]["name"] for i in selected if i < len(rows)]
    try:
        if trigger == "compare-run":
            if len(names) < 2:
                return (no_update, no_update, *keep[:3], message("Select two or more saved plans.", "warning"),
                        no_update, no_update)  # fmt: skip
            t_rows, t_cols, fig = compare(names, config)
            return no_update, no_update, t_rows, t_cols, fig, None, no_update, no_update
        if trigger == "compare-load":
            if len(names) != 1:
                return (no_update, no_update, *keep[:3], message("Select exactly one plan to open.", "warning"),
                        no_update, no_update)  # fmt: skip
            scenario_data, result = load(names[0], config)
            return (
                no_update,
                no_update,
                *keep[:3],
                message(f"Opened '{names[0]}': see the Results page.", "success"),
                scenario_data,
                result,
            )
        if trigger == "compare-delete" and names:
            store = open_store(config)
            try:
                for n in names:
                    store.delete_plan(n)
                    if not store.list_plans(scenario_name=n) and any(
                        s["name"] == n for s in store.list_scenarios()
                    ):
                        store.delete_scenario(n)
            finally:
                store.close()
            note = message(f"Deleted {', '.join(names)}.", "success")
            return (
                saved_rows(config),
                [],
                [],
                [],
                figures.compare_chart({}, []),
                note,
                no_update,
                no_update,
            )
        listed = saved_rows(config)
        note = (
            None
            if listed
            else message("No saved plans yet: save this session's plan above.", "info")
        )
        return listed, [], *keep[:3], note, no_update, no_update
    except Exception as err:  # noqa: BLE001
        if not isinstance(err, InputError):
            log.exception("saved plans action failed")
        return no_update, no_update, *keep[:3], error_message(err), no_update, no_update
