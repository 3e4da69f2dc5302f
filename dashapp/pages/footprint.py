"""Step 1, Footprint: choose an ICB (or upload your own areas) and see its population."""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from dashapp import figures
from dashapp.components import (
    MAP_CONFIG,
    card,
    error_message,
    message,
    page_header,
    problems_table,
    user_trigger,
)
from dashapp.state import (
    area_summary,
    area_table,
    current_config,
    footprint_areas,
    footprint_geometry,
    footprint_label,
    icb_options,
    problem_rows,
    received_upload,
    scenario_for_icb,
    scenario_from_store,
    scenario_from_upload,
    scenario_to_store,
    store_areas,
    with_sections,
)
from pathways import geography, uploads
from pathways.errors import InputError

log = logging.getLogger(__name__)

dash.register_page(
    __name__, path="/", name="Footprint", title="Footprint - Crisis pathway planner", order=1
)

MAP_HEIGHT = 560
METRICS: dict[str, dict[str, Any]] = {
    "population": {"label": "Population", "colorbar": "people", "scale": figures.BLUES},
    "demand_per_100k": {"label": "Crisis demand per 100,000", "colorbar": "episodes a year per 100k",
                        "scale": figures.BLUES},
    "imd_decile": {"label": "Deprivation (IMD decile)", "colorbar": "IMD decile (1 = most deprived)",
                   "scale": figures.DEPRIVATION, "zmin": 1, "zmax": 10},
}  # fmt: skip


def layout(**_query: str) -> html.Div:
    return html.Div(
        [
            page_header(
                "Choose your footprint",
                "Pick your integrated care board, or upload your own small areas. The map shows "
                "where people live, where crisis demand is highest, and how deprived each area is.",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Label("Integrated care board", htmlFor="footprint-icb"),
                            dcc.Dropdown(
                                id="footprint-icb", options=icb_options(), searchable=True,
                                clearable=False, placeholder="Type to search, e.g. Sussex",
                            ),
                            html.P("Sussex opens the bundled demo scenario. Other ICBs start from "
                                   "published NHS beds (KH03) at their hospital sites, with other "
                                   "capacities assumed (the Services page says which).",
                                   className="hint"),
                            html.Label("Shade areas by", htmlFor="footprint-metric"),
                            dcc.RadioItems(
                                id="footprint-metric",
                                options=[{"label": m["label"], "value": k} for k, m in METRICS.items()],
                                value="population", className="radio-list",
                            ),
                            html.H2("Or upload your own areas", className="h3"),
                            dcc.Upload(
                                id="footprint-upload",
                                children=html.Div(["Drag a file here or ", html.Span("choose a file", className="link")]),
                                className="upload-box", multiple=False,
                                max_size=uploads.browser_max_bytes(),
                            ),
                            html.P("GeoJSON, GeoPackage, zipped Shapefile or CSV with x,y or lon,lat. "
                                   "Fields: area_code, population; optional name, imd_decile, rural "
                                   "(taken from the chosen ICB when missing). Aggregate data only: "
                                   f"no NHS numbers, dates of birth or postcodes of people. "
                                   f"{uploads.limit_text()}", className="hint"),
                            dcc.Loading(html.Div(id="footprint-message", **{"aria-live": "polite"})),
                            html.H2("Or open a scenario file", className="h3"),
                            dcc.Upload(
                                id="footprint-scenario-upload",
                                children=html.Div(["Drag a scenario (.yaml) here or ",
                                                   html.Span("choose a file", className="link")]),
                                className="upload-box", multiple=False,
                                max_size=uploads.browser_max_bytes(),
                            ),
                            html.P("A scenario saved from the Export page ('Scenario (YAML)') or "
                                   "written for pathways on the command line. It replaces the "
                                   "session's scenario; saved scenarios are not touched.",
                                   className="hint"),
                            dcc.Loading(html.Div(id="footprint-scenario-message",
                                                 **{"aria-live": "polite"})),
                        ],
                        className="panel controls",
                    ),
                    html.Div(
                        [
                            html.Div(id="footprint-cards", className="cards"),
                            dcc.Loading(dcc.Graph(id="footprint-map", config=MAP_CONFIG),
                                        type="circle"),
                        ],
                        className="panel wide",
                    ),  # fmt: skip
                ],
                className="two-col",
            ),
            dcc.Store(id="footprint-init", data=True),
        ]
    )  # fmt: skip


def choose(trigger: str | None, icb: str | None, contents: str | None, filename: str | None,
           scenario_data: dict | None) -> tuple:  # fmt: skip
    """Apply the user's choice: returns (scenario, result, frontier, dropdown value, message)."""
    scenario = scenario_from_store(scenario_data)
    current = scenario.footprint.icb
    current_code = geography.resolve_icb(current) if current else None
    if trigger == "footprint-upload" and contents:
        cfg = current_config()
        try:
            # the raw file is deleted as soon as it is read, accepted or not
            with received_upload(contents, filename or "areas", cfg.upload_dir) as path:
                within = footprint_areas(scenario) if current_code else None
                areas = geography.load_areas(path, footprint=within)
        except InputError as err:
            return (
                no_update,
                no_update,
                no_update,
                no_update,
                problems_table(problem_rows(err), "footprint-problems"),
            )
        stored = store_areas(areas, cfg.upload_dir / "areas", filename or "areas")
        new = with_sections(scenario, footprint={"icb": None, "areas_file": str(stored)},
                            name=f"{scenario.name} (uploaded areas)")  # fmt: skip
        note = message(f"Using {len(areas):,} uploaded areas from {filename}.", "success")
        return scenario_to_store(new), None, None, None, note
    if trigger == "footprint-icb" and icb and icb != current_code:
        new = scenario_for_icb(icb)
        note = message(f"Footprint set to {footprint_label(new)}. {new.description}", "success")
        return scenario_to_store(new), None, None, icb, note
    # first view of the page: show the session's footprint in the dropdown
    return no_update, no_update, no_update, current_code, None


@callback(
    Output("app-scenario", "data", allow_duplicate=True),
    Output("app-result", "data", allow_duplicate=True),
    Output("app-frontier", "data", allow_duplicate=True),
    Output("footprint-icb", "value"),
    Output("footprint-message", "children"),
    Input("footprint-init", "data"),
    Input("footprint-icb", "value"),
    Input("footprint-upload", "contents"),
    State("footprint-upload", "filename"),
    State("app-scenario", "data"),
    prevent_initial_call="initial_duplicate",
)
def on_choose(_init, icb, contents, filename, scenario_data):
    try:
        return choose(user_trigger(), icb, contents, filename, scenario_data)
    except Exception as err:  # noqa: BLE001 - shown to the user, logged in full
        log.exception("footprint change failed")
        return no_update, no_update, no_update, no_update, error_message(err)


def open_scenario(contents: str | None, filename: str | None) -> tuple:
    """An uploaded scenario file as the session's scenario: (scenario, result, frontier,
    dropdown value, message), or the problems found, naming line and field."""
    try:
        new = scenario_from_upload(contents, filename)
    except InputError as err:
        return (no_update, no_update, no_update, no_update,
                problems_table(problem_rows(err), "footprint-scenario-problems"))  # fmt: skip
    icb = geography.resolve_icb(new.footprint.icb) if new.footprint.icb else None
    note = message(f"Opened '{new.name}' from {uploads.safe_file_name(filename, 'the file')}.",
                   "success")  # fmt: skip
    return scenario_to_store(new), None, None, icb, note


@callback(
    Output("app-scenario", "data", allow_duplicate=True),
    Output("app-result", "data", allow_duplicate=True),
    Output("app-frontier", "data", allow_duplicate=True),
    Output("footprint-icb", "value", allow_duplicate=True),
    Output("footprint-scenario-message", "children"),
    Input("footprint-scenario-upload", "contents"),
    State("footprint-scenario-upload", "filename"),
    prevent_initial_call=True,
)
def on_open_scenario(contents, filename):
    if not contents:
        return no_update, no_update, no_update, no_update, no_update
    try:
        return open_scenario(contents, filename)
    except Exception as err:  # noqa: BLE001 - shown to the user, logged in full
        log.exception("opening a scenario file failed")
        return no_update, no_update, no_update, no_update, error_message(err)


def render(scenario_data: dict | None, metric: str | None, tile_url: str | None) -> tuple:
    """Map and summary cards for the session's footprint."""
    scenario = scenario_from_store(scenario_data)
    table = area_table(scenario)
    geometry = footprint_geometry(scenario)
    metric = metric if isinstance(metric, str) and metric in METRICS else "population"
    m = METRICS[metric]
    hover = [
        f"<b>{r['name']}</b> ({code})<br>population {r.population:,.0f}<br>IMD decile {r.imd_decile}"
        f"{' (rural)' if r.rural else ''}<br>crisis demand {r.demand_per_100k:,.0f} per 100k a year"
        for code, r in table.reindex(list(geometry.ids)).iterrows()
    ]
    fig = figures.area_map(
        geometry, table[metric], hover, colorbar_title=m["colorbar"], colorscale=m["scale"],
        zmin=m.get("zmin"), zmax=m.get("zmax"), tile_url=tile_url,
        uirevision=scenario.footprint.model_dump_json(), width_px=880, height=MAP_HEIGHT,
    )  # fmt: skip
    s = area_summary(table)
    cards = [
        card("Population", f"{s['population']:,.0f}", footprint_label(scenario)),
        card("Small areas", f"{s['areas']:,.0f}", "LSOA 2011" if scenario.footprint.icb else "uploaded"),
        card("Most deprived fifth", f"{s['imd_q1_share']:.0%}", "of people (IMD Q1; England 20%)"),
        card("Least deprived fifth", f"{s['imd_q5_share']:.0%}", "of people (IMD Q5)"),
        card("Rural", f"{s['rural_share']:.0%}", "of people"),
        card("Crisis episodes", f"{s['episodes_per_year']:,.0f}", "expected a year"),
    ]  # fmt: skip
    return fig, cards


@callback(
    Output("footprint-map", "figure"),
    Output("footprint-cards", "children"),
    Input("app-scenario", "data"),
    Input("footprint-metric", "value"),
)
def on_render(scenario_data, metric):
    try:
        tile_url = current_config().tile_url
        return figures.DRAWN.get(("footprint", scenario_data, metric, tile_url),
                                 lambda: render(scenario_data, metric, tile_url))  # fmt: skip
    except Exception as err:  # noqa: BLE001
        log.exception("footprint map failed")
        return figures.empty_figure("The map could not be drawn."), [error_message(err)]
