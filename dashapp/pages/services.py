"""Step 2, Services: today's sites and candidate locations, on the map and in a table."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dash
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from dashapp import figures
from dashapp.components import (
    MAP_CONFIG,
    capacity_sources,
    data_table_style,
    error_message,
    message,
    page_header,
    problems_table,
    scroll_table,
    size_key,
    user_trigger,
)
from dashapp.state import (
    LOCK_OPTIONS,
    SITE_CAPACITY_BOUNDS,
    SITE_COLUMN_LABELS,
    area_table,
    bng_to_lonlat,
    current_config,
    footprint_areas,
    footprint_geometry,
    merge_rows,
    new_site_row,
    problem_rows,
    received_upload,
    rows_to_scenario,
    scenario_from_store,
    scenario_to_store,
    site_rows,
    sites_frame,
    uploaded_site_rows,
)
from pathways import geography, uploads
from pathways.errors import InputError
from pathways.provenance import CAPACITIES, figure_sources
from pathways.scenario import CAPACITY_FIELD

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/services", name="Services", title="Services - Crisis pathway planner",
                   order=2)  # fmt: skip

MAP_HEIGHT = 580
PAGE_SIZE = 15
COLUMN_WIDTHS = {"name": "190px", "services": "170px", "lock": "200px", "status": "120px"}
_NUMERIC = {
    "inpatient_beds",
    "crisis_house_places",
    "mobile_teams",
    "place_of_safety_suites",
    "lat",
    "lon",
}
_DROPDOWN = {"status", "lock"}
COLUMNS: list[dict[str, Any]] = [
    {"name": label, "id": cid, **({"type": "numeric"} if cid in _NUMERIC else {}),
     **({"presentation": "dropdown"} if cid in _DROPDOWN else {})}
    for cid, label in SITE_COLUMN_LABELS.items()
]  # fmt: skip
TABLE_PROBLEMS = "Nothing was changed: fix the entries listed below in the sites table."


def layout(**_query: str) -> html.Div:
    style = data_table_style()
    return html.Div(
        [
            page_header(
                "Services and sites",
                "Today's crisis services and the places where new ones could open. Edit capacity, "
                "lock what must not change, add candidate sites (click an area on the map), or "
                "upload your own site list.",
            ),
            html.Div(id="services-sources"),
            html.Div(
                [
                    dcc.Loading(dcc.Graph(id="services-map", config=MAP_CONFIG), type="circle"),
                    html.Div(id="services-map-key"),
                    html.P(
                        "Click any area on the map to add a candidate site at its centre. Marker size "
                        "shows capacity; colour shows the service.",
                        className="hint",
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.Div(
                        [
                            html.Button(
                                "Add a candidate site",
                                id="services-add",
                                className="button secondary",
                            ),
                            dcc.Upload(
                                id="services-upload",
                                className="upload-inline",
                                children=html.Button(
                                    "Upload sites (CSV / GeoJSON)", className="button secondary"
                                ),
                                multiple=False,
                                max_size=uploads.browser_max_bytes(),
                            ),
                            html.Span(
                                "Columns: site_id, name, services (e.g. inpatient; mobile_team), capacity "
                                "columns, status, and x,y or lon,lat. " + uploads.limit_text(),
                                className="hint inline-hint",
                            ),
                        ],
                        className="toolbar",
                    ),
                    dcc.Loading(html.Div(id="services-message", **{"aria-live": "polite"})),
                    scroll_table(
                        dash_table.DataTable(
                            id="services-table",
                            columns=[{**c, "editable": True} for c in COLUMNS],
                            data=[],
                            editable=True,
                            row_deletable=True,
                            page_size=PAGE_SIZE,
                            dropdown={
                                "status": {
                                    "options": [
                                        {"label": v, "value": v} for v in ("existing", "candidate")
                                    ],
                                    "clearable": False,
                                },
                                "lock": {
                                    "options": [{"label": v, "value": v} for v in LOCK_OPTIONS],
                                    "clearable": False,
                                },
                            },
                            tooltip_header={
                                "services": "Services the site may offer: inpatient, crisis house, mobile team, "
                                "place of safety (comma separated). The optimiser may open these.",
                                "lock": "Whether the optimiser may shrink or close this site's services.",
                                "lat": "WGS84 latitude, 49 to 61 (edit to move the site).",
                                "lon": "WGS84 longitude, -9 to 3 (edit to move the site).",
                                **{
                                    CAPACITY_FIELD[svc]: b.hint()
                                    for svc, b in SITE_CAPACITY_BOUNDS.items()
                                },
                            },
                            css=[
                                {
                                    "selector": ".Select-menu-outer",
                                    "rule": "display: block !important",
                                }
                            ],
                            style_cell_conditional=[
                                {"if": {"column_id": c}, "minWidth": w, "width": w}
                                for c, w in COLUMN_WIDTHS.items()
                            ],
                            **style,
                        )
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            dcc.Store(id="services-init", data=True),
        ]
    )


def _centre(scenario) -> tuple[float, float]:
    areas = footprint_areas(scenario)
    w = areas[geography.POP_TOTAL].astype(float)
    x = float((areas[geography.CENTROID_X] * w).sum() / max(w.sum(), 1))
    y = float((areas[geography.CENTROID_Y] * w).sum() / max(w.sum(), 1))
    lon, lat = bng_to_lonlat([x], [y])
    return float(lon[0]), float(lat[0])


def update_sites(
    trigger: str | None,
    rows: Sequence[Mapping[str, Any]] | None,
    click: Mapping[str, Any] | None,
    contents: str | None,
    filename: str | None,
    scenario_data: dict | None,
) -> tuple:
    """Apply an edit, a click, an added row or an upload: returns (scenario, rows, message)."""
    scenario = scenario_from_store(scenario_data)
    if trigger is None or trigger == "services-init" or rows is None:
        return no_update, site_rows(scenario), None
    rows = [dict(r) for r in rows]
    note = None
    if trigger == "services-add":
        lon, lat = _centre(scenario)
        rows.append(new_site_row(rows, lon, lat, "New candidate site"))
        note = message("Added a candidate site at the footprint's population centre: edit its name, "
                       "position and services in the last row.", "info")  # fmt: skip
    elif trigger == "services-map":
        point = (click or {}).get("points", [{}])[0]
        code = point.get("location") or point.get("id")
        if code is None:
            sid = point.get("customdata")
            return (
                no_update,
                no_update,
                message(
                    f"Site {sid}: edit it in the table below."
                    if sid
                    else "Click an area (not a site) to add a candidate there."
                ),
            )
        table = area_table(scenario)
        if code not in table.index:
            return no_update, no_update, None
        lon, lat = bng_to_lonlat([table.at[code, "x"]], [table.at[code, "y"]])
        name = f"Candidate near {table.at[code, 'name']}"
        rows.append(new_site_row(rows, float(lon[0]), float(lat[0]), name))
        note = message(
            f"Added '{name}' (crisis house and mobile-team base, no capacity yet).", "success"
        )
    elif trigger == "services-upload" and contents:
        try:
            # the raw file is deleted as soon as it is read, accepted or not
            with received_upload(
                contents, filename or "sites", current_config().upload_dir
            ) as path:
                uploaded = geography.load_sites(path, footprint=footprint_areas(scenario))
        except InputError as err:
            return no_update, no_update, problems_table(problem_rows(err), "services-problems")
        rows = merge_rows(rows, uploaded_site_rows(uploaded))
        note = message(f"Added or replaced {len(uploaded)} site(s) from {filename}.", "success")
    try:
        new = rows_to_scenario(rows, scenario)
    except InputError as err:
        n = len(err.problems)
        heading = f"{n} problem{'s' if n != 1 else ''} in the sites table. " + TABLE_PROBLEMS
        return no_update, rows, problems_table(problem_rows(err), "services-problems", heading)
    if note is None:
        note = message(f"Saved: {len(new.sites)} sites.", "success")
    out_rows = site_rows(new)
    return scenario_to_store(new), out_rows, note


def page_showing_new_rows(trigger: str | None, before: Sequence[Any] | None, after: Any) -> Any:
    """The table page to show: the last one when rows were added (so the user sees them)."""
    added = isinstance(after, list) and len(after) > len(before or [])
    if trigger in ("services-add", "services-map", "services-upload") and added:
        return (len(after) - 1) // PAGE_SIZE
    return no_update


@callback(
    Output("app-scenario", "data", allow_duplicate=True),
    Output("services-table", "data"),
    Output("services-message", "children"),
    Output("services-table", "page_current"),
    Input("services-init", "data"),
    Input("services-table", "data_timestamp"),
    Input("services-add", "n_clicks"),
    Input("services-map", "clickData"),
    Input("services-upload", "contents"),
    State("services-upload", "filename"),
    State("services-table", "data"),
    State("app-scenario", "data"),
    prevent_initial_call="initial_duplicate",
)
def on_update(_init, _ts, _add, click, contents, filename, rows, scenario_data):
    trigger = user_trigger()
    if trigger == "services-table":
        trigger = "edit"
    try:
        scenario, out_rows, note = update_sites(
            trigger,
            rows if trigger != "services-init" else None,
            click,
            contents,
            filename,
            scenario_data,
        )
    except Exception as err:  # noqa: BLE001
        log.exception("sites update failed")
        return no_update, no_update, error_message(err), no_update
    return scenario, out_rows, note, page_showing_new_rows(trigger, rows, out_rows)


def render(scenario_data: dict | None, tile_url: str | None):
    scenario = scenario_from_store(scenario_data)
    geometry = footprint_geometry(scenario)
    table = area_table(scenario)
    hover = [f"<b>{r['name']}</b> ({code})<br>population {r.population:,.0f}<br>click to add a candidate here"
             for code, r in table.reindex(list(geometry.ids)).iterrows()]  # fmt: skip
    return figures.area_map(
        geometry, table["population"], hover, colorbar_title="people", colorscale=figures.GREYS,
        sites=sites_frame(scenario), tile_url=tile_url, uirevision=scenario.footprint.model_dump_json(),
        height=MAP_HEIGHT, width_px=1220,
    )  # fmt: skip


@callback(
    Output("services-map", "figure"),
    Output("services-map-key", "children"),
    Output("services-sources", "children"),
    Input("app-scenario", "data"),
)
def on_render(scenario_data):
    try:
        scenario = scenario_from_store(scenario_data)
        key = size_key(figures.marker_size_key(sites_frame(scenario)))
        sources = figure_sources(scenario)
        rows = sources[sources["path"].isin(list(CAPACITIES))].to_dict("records")
        tile_url = current_config().tile_url
        fig = figures.DRAWN.get(("services", scenario_data, tile_url),
                                lambda: render(scenario_data, tile_url))  # fmt: skip
        return fig, key, capacity_sources(rows)
    except Exception:  # noqa: BLE001
        log.exception("services map failed")
        return figures.empty_figure("The map could not be drawn."), None, None
