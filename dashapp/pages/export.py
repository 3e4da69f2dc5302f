"""Step 7, Export: Excel, CSV, GeoPackage and a printable report, small numbers suppressed."""

from __future__ import annotations

import logging

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashapp import exports
from dashapp.components import error_message, message, page_header, user_trigger
from dashapp.state import result_is_fresh, scenario_from_store

log = logging.getLogger(__name__)

dash.register_page(
    __name__, path="/export", name="Export", title="Export - Crisis pathway planner", order=7
)

FILES = {
    "export-xlsx": ("Excel workbook", "Scorecard for today and the plan, plan by site, KPIs by area and by "
                    "deprivation quintile, workforce and every assumption with its source.", ".xlsx"),
    "export-csv": ("Scorecard (CSV)", "Every measure, per 100,000 people and by deprivation quintile.", ".csv"),
    "export-sites-csv": ("Sites (CSV)", "Each site's capacity today and in the plan, and the change.", ".csv"),
    "export-gpkg": ("GeoPackage (sites and areas)", "For QGIS or ArcGIS: layers 'sites' (points) and 'areas' "
                    "(the plan's measures by small area), British National Grid.", ".gpkg"),
    "export-html": ("Printable report (HTML)", "One page for a board paper: open it in a browser and print "
                    "or save as PDF.", ".html"),
}  # fmt: skip


def layout(**_query: str) -> html.Div:
    return html.Div(
        [
            page_header(
                "Export",
                "Take the answer away. Files describe the session's scenario and its plan "
                "(or today's capacity if there is no up-to-date plan).",
            ),  # fmt: skip
            html.Div(
                [
                    dcc.Checklist(
                        id="export-suppress",
                        className="check-list",
                        value=["on"],
                        options=[
                            {
                                "label": "Suppress small numbers (counts below 5 shown as '<5') - recommended before "
                                "sharing",
                                "value": "on",
                            }
                        ],
                    ),  # fmt: skip
                    html.Div(id="export-what", className="hint"),
                ],
                className="panel",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Button(label, id=key, className="button primary"),
                            html.P(text, className="hint"),
                        ],
                        className="export-item",
                    )
                    for key, (label, text, _) in FILES.items()
                ],
                className="panel export-grid",
            ),  # fmt: skip
            dcc.Loading(html.Div(id="export-message", **{"aria-live": "polite"})),
            dcc.Download(id="export-download"),
        ]
    )


@callback(
    Output("export-what", "children"), Input("app-scenario", "data"), Input("app-result", "data")
)
def on_what(scenario_data, result):
    try:
        scenario = scenario_from_store(scenario_data)
    except Exception:  # noqa: BLE001
        return "The session has no valid scenario."
    plan = (
        "the optimised plan"
        if result_is_fresh(result, scenario)
        else "today's capacity (no up-to-date plan)"
    )
    return f"Exporting '{scenario.name}' with {plan}."


def make_file(kind: str, scenario_data: dict | None, result: dict | None, suppress: bool) -> dict:
    """The download payload for one export button."""
    scenario = scenario_from_store(scenario_data)
    cards, plan = exports.export_cards(scenario, result)
    main = cards[list(cards)[-1]]
    stem = exports.file_stem(scenario)
    ext = FILES[kind][2]
    if kind == "export-xlsx":
        return dcc.send_bytes(exports.excel_bytes(scenario, cards, plan, suppress), f"{stem}{ext}")
    if kind == "export-csv":
        return dcc.send_string(exports.scorecard_csv(cards, suppress), f"{stem}-scorecard{ext}")
    if kind == "export-sites-csv":
        return dcc.send_string(exports.sites_csv(scenario, plan, main), f"{stem}-sites{ext}")
    if kind == "export-gpkg":
        return dcc.send_bytes(
            exports.geopackage_bytes(scenario, plan, main, suppress), f"{stem}{ext}"
        )
    return dcc.send_string(
        exports.report_html(scenario, cards, plan, suppress), f"{stem}-report{ext}"
    )


@callback(
    Output("export-download", "data"),
    Output("export-message", "children"),
    [Input(k, "n_clicks") for k in FILES],
    State("export-suppress", "value"),
    State("app-scenario", "data"),
    State("app-result", "data"),
    prevent_initial_call=True,
)
def on_export(*args):
    *_clicks, suppress, scenario_data, result = args
    kind = user_trigger()
    if kind not in FILES:
        return no_update, no_update
    try:
        payload = make_file(kind, scenario_data, result, bool(suppress) and "on" in suppress)
    except Exception as err:  # noqa: BLE001
        log.exception("export failed")
        return no_update, error_message(err)
    return payload, message(f"{FILES[kind][0]} ready: {payload['filename']}", "success")
