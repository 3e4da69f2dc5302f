"""Step 7, Export: Excel, CSV, GeoPackage and a printable report, small numbers suppressed."""

from __future__ import annotations

import logging

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashapp import exports
from dashapp.components import error_message, message, page_header, settings_rows, user_trigger
from dashapp.state import plan_from_result, plan_judgement, result_is_fresh, scenario_from_store
from pathways.provenance import annotated_yaml

log = logging.getLogger(__name__)

dash.register_page(
    __name__, path="/export", name="Export", title="Export - Crisis pathway planner", order=7
)

FILES = {
    "export-xlsx": ("Excel workbook", "The plan's settings and any limit it breaks, the scorecard for today "
                    "and the plan, plan by site, KPIs by area and by deprivation quintile, workforce and "
                    "every assumption with its source.", ".xlsx"),
    "export-csv": ("Scorecard (CSV)", "Every measure, per 100,000 people and by deprivation quintile; the "
                   "plan's settings are the first lines (starting with #).", ".csv"),
    "export-sites-csv": ("Sites (CSV)", "Each site's capacity today and in the plan, and the change; the "
                         "plan's settings are the first lines (starting with #).", ".csv"),
    "export-gpkg": ("GeoPackage (sites and areas)", "For QGIS or ArcGIS: layers 'sites' (points) and 'areas' "
                    "(the plan's measures by small area), British National Grid, and the table "
                    "'plan_settings'.", ".gpkg"),
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
                                "label": "Suppress small numbers (counts below 5, and figures that would give them "
                                "back, shown as [c]) - recommended before "
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
            html.Div(
                [
                    html.Div(
                        [
                            html.Button(
                                "Scenario (YAML)", id="export-yaml", className="button secondary"
                            ),
                            html.P(
                                "The session's scenario as an editable file, each figure with where it "
                                "comes from (published, calibrated or assumed). Open it again on the "
                                "Footprint page, or run it with pathways evaluate.",
                                className="hint",
                            ),
                        ],
                        className="export-item",
                    ),
                    dcc.Loading(html.Div(id="export-yaml-message", **{"aria-live": "polite"})),
                    dcc.Download(id="export-yaml-download"),
                ],
                className="panel",
            ),  # fmt: skip
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


def export_facts(
    scenario, result: dict | None
) -> tuple[list[tuple[str, str]], dict[str, list[str]], bool]:
    """(settings as (setting, value) rows, limits each exported plan breaks, has a plan)."""
    settings, breaches = plan_judgement(scenario, result)
    has_plan = result_is_fresh(result, scenario) and plan_from_result(result) is not None
    names = ("current", "optimised") if has_plan else ("current",)
    return settings_rows(settings), {n: list(breaches.get(n) or []) for n in names}, has_plan


def _limits_lines(breaches: dict[str, list[str]]) -> list[tuple[str, str]]:
    out = []
    for name, broken in breaches.items():
        label = "Limits: " + PLAN_WORDS.get(name, name)
        out.append((label, "meets every limit" if not broken else
                    f"DOES NOT MEET {len(broken)} limit{'s' if len(broken) != 1 else ''}: " + "; ".join(broken)))  # fmt: skip
    return out


PLAN_WORDS = {"current": "today's capacity", "optimised": "the optimised plan"}


def with_settings_csv(text: str, rows: list[tuple[str, str]], title: str) -> str:
    """A CSV with the plan's settings as ``#`` comment lines above its table (read it with
    ``pandas.read_csv(..., comment="#")``; a spreadsheet shows them as the first rows)."""
    head = [f"# {title}"] + [f"# {k}: {v}".replace("\n", " ") for k, v in rows]
    return "\n".join(head) + "\n" + text


def with_settings_xlsx(
    data: bytes, rows: list[tuple[str, str]], breaches: dict[str, list[str]]
) -> bytes:
    """The workbook with a first sheet 'Plan settings': every setting, and every limit broken."""
    import io

    import openpyxl
    from openpyxl.styles import Font, PatternFill

    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb.create_sheet("Plan settings", 0)
    ws.append(["Setting", "Value"])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for k, v in rows:
        ws.append([k, v])
    ws.append([])
    for k, v in _limits_lines(breaches):
        ws.append([k, v])
        if v != "meets every limit":
            for cell in ws[ws.max_row]:
                cell.fill = PatternFill("solid", fgColor="FDF0EF")
                cell.font = Font(bold=True, color="B01A0F")
    ws.column_dimensions["A"].width = 48
    ws.column_dimensions["B"].width = 90
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def with_settings_gpkg(
    data: bytes, rows: list[tuple[str, str]], breaches: dict[str, list[str]]
) -> bytes:
    """The GeoPackage with a table (no geometry) 'plan_settings': setting, value."""
    import tempfile
    from pathlib import Path

    import pandas as pd
    import pyogrio

    table = pd.DataFrame(rows + _limits_lines(breaches), columns=["setting", "value"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.gpkg"
        path.write_bytes(data)
        pyogrio.write_dataframe(table, path, layer="plan_settings", driver="GPKG", append=True)
        return path.read_bytes()


def with_settings_html(report: str, rows: list[tuple[str, str]], breaches: dict[str, list[str]],
                       has_plan: bool) -> str:  # fmt: skip
    """The report with the plan's settings, and any limit broken marked, before its scorecard."""
    from html import escape

    title = (
        "Settings used for this plan"
        if has_plan
        else "Budget and standards today's capacity is judged against"
    )
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    parts = [f"<h2>{escape(title)}</h2><table><tbody>{cells}</tbody></table>"]
    for name, broken in breaches.items():
        who = escape(PLAN_WORDS.get(name, name)).capitalize()
        if broken:
            items = "".join(f"<li>{escape(b)}</li>" for b in broken)
            parts.append(f"<p class='worse'>{who} does not meet {len(broken)} limit"
                         f"{'s' if len(broken) != 1 else ''}:</p><ul class='worse'>{items}</ul>")  # fmt: skip
        else:
            parts.append(f"<p class='better'>{who} meets every limit.</p>")
    block = "".join(parts)
    anchor = "<h2>Balanced scorecard</h2>"
    return (
        report.replace(anchor, block + anchor, 1)
        if anchor in report
        else report.replace("</body>", block + "</body>")
    )


def make_file(kind: str, scenario_data: dict | None, result: dict | None, suppress: bool) -> dict:
    """The download payload for one export button; every file states the settings the plan
    was made under (or today's capacity is judged against) and marks any limit it breaks."""
    scenario = scenario_from_store(scenario_data)
    cards, plan = exports.export_cards(scenario, result)
    main = cards[list(cards)[-1]]
    stem = exports.file_stem(scenario)
    ext = FILES[kind][2]
    rows, breaches, has_plan = export_facts(scenario, result)
    title = (
        "Settings used for this plan"
        if has_plan
        else "Budget and standards today's capacity is judged against"
    )
    if kind == "export-xlsx":
        data = exports.excel_bytes(scenario, cards, plan, suppress)
        return dcc.send_bytes(with_settings_xlsx(data, rows, breaches), f"{stem}{ext}")
    if kind == "export-csv":
        text = with_settings_csv(
            exports.scorecard_csv(cards, suppress), rows + _limits_lines(breaches), title
        )
        return dcc.send_string(text, f"{stem}-scorecard{ext}")
    if kind == "export-sites-csv":
        text = with_settings_csv(
            exports.sites_csv(scenario, plan, main), rows + _limits_lines(breaches), title
        )
        return dcc.send_string(text, f"{stem}-sites{ext}")
    if kind == "export-gpkg":
        data = exports.geopackage_bytes(scenario, plan, main, suppress)
        return dcc.send_bytes(with_settings_gpkg(data, rows, breaches), f"{stem}{ext}")
    report = exports.report_html(scenario, cards, plan, suppress)
    return dcc.send_string(
        with_settings_html(report, rows, breaches, has_plan), f"{stem}-report{ext}"
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
        hide_small = not isinstance(suppress, list) or "on" in suppress  # damaged: suppress
        payload = make_file(kind, scenario_data, result, hide_small)
    except Exception as err:  # noqa: BLE001
        log.exception("export failed")
        return no_update, error_message(err)
    return payload, message(f"{FILES[kind][0]} ready: {payload['filename']}", "success")


def scenario_file(scenario_data: dict | None) -> dict:
    """The download payload of the session's scenario as annotated YAML."""
    scenario = scenario_from_store(scenario_data)
    return dcc.send_string(annotated_yaml(scenario), f"{exports.file_stem(scenario)}.yaml")


@callback(
    Output("export-yaml-download", "data"),
    Output("export-yaml-message", "children"),
    Input("export-yaml", "n_clicks"),
    State("app-scenario", "data"),
    prevent_initial_call=True,
)
def on_export_yaml(clicks, scenario_data):
    if not clicks:
        return no_update, no_update
    try:
        payload = scenario_file(scenario_data)
    except Exception as err:  # noqa: BLE001
        log.exception("scenario export failed")
        return no_update, error_message(err)
    return payload, message(f"Scenario ready: {payload['filename']}", "success")
