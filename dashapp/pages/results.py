"""Step 5, Results: the plan on the map, its scorecard against today, equity and the frontier."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import dash
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from dashapp import figures
from dashapp import simulation as sim
from dashapp.components import (
    CHART_CONFIG,
    MAP_CONFIG,
    NHS_GREEN,
    NHS_RED,
    SERVICE_NAMES,
    breach_summary,
    data_table_style,
    empty_state,
    error_data,
    error_message,
    fmt_change,
    fmt_money,
    fmt_value,
    job_view,
    kpi_label,
    message,
    message_data,
    page_header,
    plan_facts,
    render_message,
    scroll_table,
    size_key,
    verdict,
)
from dashapp.state import (
    FRONTIER_MAX,
    FRONTIER_SECONDS,
    FieldError,
    area_table,
    current_config,
    footprint_geometry,
    job_board,
    new_job_id,
    plan_from_result,
    plan_judgement,
    result_is_fresh,
    scenario_from_store,
    sites_frame,
)
from pathways.errors import InputError
from pathways.kpis import HEADLINE_KPIS, HIGHER_IS_BETTER, evaluate
from pathways.scenario import SERVICES, Scenario

log = logging.getLogger(__name__)

dash.register_page(__name__, path="/results", name="Results", title="Results - Crisis pathway planner",
                   order=5)  # fmt: skip

PLAN_NAMES = {"current": "Today", "pro rata": "Pro rata", "greedy marginal": "Greedy marginal",
              "optimised": "Optimised"}  # fmt: skip
MAP_METRICS = {
    "mobile_response_mins": "Mobile response time",
    "crisis_house_travel_mins": "Travel to a crisis house",
    "admissions_per_100k": "Admissions per 100,000",
}
EQUITY_KPIS = [
    ("admissions_per_year", True),
    ("oap_bed_days_per_year", True),
    ("crisis_house_episodes_per_year", True),
    ("mobile_response_within_standard_share", False),
    ("mean_travel_mins", False),
]
FRONTIER_STEPS = 4
FRONTIER_TIME_LIMIT_S = 15
FRONTIER_DEFAULT_PCT = 15
FRONTIER_JOB = "frontier"
SIMULATE_JOB = "simulate"


def layout(**_query: str) -> html.Div:
    style = data_table_style()
    return html.Div(
        [
            page_header("Results", "The plan on the map and its balanced scorecard against today."),
            dcc.Loading(html.Div(id="results-status", **{"aria-live": "polite"})),
            html.Div(
                [
                    html.Div(
                        [
                            html.H2("Plan map", className="h3"),
                            dcc.RadioItems(
                                id="results-map-metric",
                                className="radio-list inline",
                                options=[{"label": v, "value": k} for k, v in MAP_METRICS.items()],
                                value="mobile_response_mins",
                            ),
                            dcc.Loading(
                                dcc.Graph(id="results-map", config=MAP_CONFIG), type="circle"
                            ),
                            html.Div(id="results-map-key"),
                        ],
                        className="panel wide",
                    ),
                    html.Div(
                        [
                            html.H2("Change from today", className="h3"),
                            dcc.Loading(dcc.Graph(id="results-change-chart", config=CHART_CONFIG)),
                        ],
                        className="panel",
                    ),
                ],
                className="two-col",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Balanced scorecard", className="h3"),
                    html.P(
                        "Modelled expected values per year. 'Pro rata' and 'greedy marginal' are simple "
                        "ways of spending the same budget, for comparison.",
                        className="hint",
                    ),
                    scroll_table(
                        dash_table.DataTable(
                            id="results-scorecard",
                            data=[],
                            columns=[],
                            **style,
                            style_data_conditional=[],
                            style_cell_conditional=[
                                {"if": {"column_id": "kpi"}, "minWidth": "150px"},
                                # figures never break across lines ("+£4.10M", "-17.1 points")
                                *(
                                    {"if": {"column_id": c}, "whiteSpace": "nowrap"}
                                    for c in (
                                        "current",
                                        "optimised",
                                        "change",
                                        "pro rata",
                                        "greedy marginal",
                                        "per_100k_current",
                                        "per_100k_optimised",
                                    )
                                ),
                            ],
                        )
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            simulation_panel(style),
            html.Div(
                [
                    html.Div(
                        [
                            html.H2("Equity: by deprivation quintile", className="h3"),
                            html.Label("Measure", htmlFor="results-equity-kpi"),
                            dcc.Dropdown(
                                id="results-equity-kpi",
                                clearable=False,
                                value="admissions_per_year",
                                options=[
                                    {"label": kpi_label(k), "value": k} for k, _ in EQUITY_KPIS
                                ],
                            ),
                            dcc.Loading(dcc.Graph(id="results-equity-chart", config=CHART_CONFIG)),
                        ],
                        className="panel",
                    ),
                    html.Div(
                        [
                            html.H2("By deprivation quintile (per 100,000 people)", className="h3"),
                            scroll_table(
                                dash_table.DataTable(
                                    id="results-quintiles", data=[], columns=[], **style
                                )
                            ),
                        ],
                        className="panel",
                    ),
                ],
                className="two-col even",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("What changed, site by site", className="h3"),
                    html.Div(id="results-changes-note"),
                    scroll_table(
                        dash_table.DataTable(
                            id="results-changes",
                            data=[],
                            columns=[],
                            page_size=15,
                            **style,
                            style_data_conditional=[
                                {
                                    "if": {"filter_query": "{change} > 0", "column_id": "change"},
                                    "color": NHS_GREEN,
                                    "fontWeight": "bold",
                                },
                                {
                                    "if": {"filter_query": "{change} < 0", "column_id": "change"},
                                    "color": NHS_RED,
                                    "fontWeight": "bold",
                                },
                            ],
                        )
                    ),
                ],
                className="panel",
            ),  # fmt: skip
            html.Div(
                [
                    html.H2("Budget frontier", className="h3"),
                    html.P(
                        "How many out-of-area bed-days each extra pound avoids. Each budget is a separate "
                        "optimisation, so this takes a few minutes.",
                        className="hint",
                    ),
                    html.Div(
                        [
                            html.Div(
                                [
                                    html.Label("Up to", htmlFor="results-frontier-max"),
                                    html.Div(
                                        [
                                            dcc.Input(
                                                id="results-frontier-max",
                                                type="text",
                                                className="num-input short",
                                                autoComplete="off",
                                            ),
                                            html.Span("% above today's cost", className="unit"),
                                        ],
                                        className="input-with-unit",
                                    ),
                                    html.Div(FRONTIER_MAX.hint(), className="hint"),
                                ],
                                className="form-field",
                            ),
                            html.Div(
                                [
                                    html.Label(
                                        "Seconds per budget", htmlFor="results-frontier-time"
                                    ),
                                    html.Div(
                                        [
                                            dcc.Input(
                                                id="results-frontier-time",
                                                type="text",
                                                className="num-input short",
                                                autoComplete="off",
                                            ),
                                            html.Span("seconds", className="unit"),
                                        ],
                                        className="input-with-unit",
                                    ),
                                    html.Div(FRONTIER_SECONDS.hint(), className="hint"),
                                ],
                                className="form-field",
                            ),
                            html.Div(
                                [
                                    html.Button(
                                        "Compute frontier",
                                        id="results-frontier-run",
                                        className="button secondary",
                                    ),
                                    html.Button(
                                        "Cancel",
                                        id="results-frontier-cancel",
                                        className="button warning",
                                        disabled=True,
                                    ),
                                ],
                                className="button-row",
                            ),
                        ],
                        className="toolbar",
                    ),
                    html.Div(
                        [
                            html.Progress(
                                id="results-frontier-progress",
                                max=100,
                                value=0,
                                **{"aria-label": "frontier progress"},
                            ),
                            html.Span(id="results-frontier-label", className="progress-label"),
                        ],
                        id="results-frontier-wrap",
                        className="progress-wrap hidden",
                    ),
                    html.Div(id="results-frontier-status", **{"aria-live": "polite"}),
                    dcc.Graph(id="results-frontier-chart", config=CHART_CONFIG),
                    scroll_table(
                        dash_table.DataTable(
                            id="results-frontier-table",
                            data=[],
                            columns=FRONTIER_COLUMNS,
                            **style,
                            style_data_conditional=[
                                {
                                    "if": {"filter_query": "{bad} >= 2"},
                                    "backgroundColor": "#fff8e6",
                                },
                                {
                                    "if": {"filter_query": "{bad} = 0", "column_id": "what"},
                                    "color": NHS_GREEN,
                                    "fontWeight": "bold",
                                },
                            ],
                        )
                    ),
                    dcc.Store(id="results-frontier-init", data=True),
                ],
                className="panel",
            ),  # fmt: skip
        ]
    )


def simulation_panel(style: dict) -> html.Div:
    """How sure are we: simulated years of today and the plan, bands and OAPs by day."""
    return html.Div(
        [
            html.H2("How sure are we? Simulated years", className="h3"),
            html.P(
                "The scorecard gives expected values for an average year. A simulation replays "
                "whole years of crisis episodes - busier winters, long and short stays, people "
                "brought back from out-of-area beds after a week - to show how far a year can "
                "stray from the average, and how often someone is out of area. Each simulated "
                "year of the Sussex demo takes under a second to two seconds, by how busy the computer is.",
                className="hint",
            ),
            html.Div(
                [
                    html.Div(
                        [
                            html.Label("Simulated years", htmlFor="results-sim-reps"),
                            html.Div(
                                [
                                    dcc.Input(id="results-sim-reps", type="text",
                                              className="num-input short", autoComplete="off"),
                                    html.Span("years", className="unit"),
                                ],
                                className="input-with-unit",
                            ),
                            html.Div(sim.SIM_REPS.hint(), className="hint"),
                        ],
                        className="form-field",
                    ),
                    html.Div(
                        [
                            html.Button("Simulate", id="results-sim-run", className="button secondary"),
                            html.Button("Cancel", id="results-sim-cancel", className="button warning",
                                        disabled=True),
                        ],
                        className="button-row",
                    ),
                ],
                className="toolbar",
            ),
            html.Div(
                [
                    html.Progress(id="results-sim-progress", max=100, value=0,
                                  **{"aria-label": "simulation progress"}),
                    html.Span(id="results-sim-label", className="progress-label"),
                ],
                id="results-sim-wrap",
                className="progress-wrap hidden",
            ),
            html.Div(id="results-sim-status", **{"aria-live": "polite"}),
            html.Div(id="results-sim-note"),
            scroll_table(dash_table.DataTable(id="results-sim-table", data=[], columns=sim.SIM_COLUMNS,
                                              **style)),
            dcc.Graph(id="results-sim-chart", config=CHART_CONFIG),
            dcc.Store(id="results-sim-init", data=True),
        ],
        className="panel",
    )  # fmt: skip


# --------------------------------------------------------------------------- data


def session_cards(
    scenario: Scenario, result: Mapping[str, Any] | None
) -> tuple[dict[str, dict], Any, Any]:
    """(card dicts by plan name, the Scorecard of the plan shown, the plan shown or None)."""
    plan = plan_from_result(result) if result_is_fresh(result, scenario) else None
    if plan is not None:
        cards = dict(result["cards"])
        shown = evaluate(scenario, plan)
        return cards, shown, plan
    today = evaluate(scenario)
    return {"current": today.to_dict()}, today, None


def scorecard_rows(
    cards: Mapping[str, Mapping[str, Any]], breaches: Mapping[str, Any] | None = None,
) -> tuple[list[dict], list[dict], list[dict]]:  # fmt: skip
    """Scorecard table rows and columns, and the change-chart rows (optimised vs today).

    Columns run today, optimised, the change and its verdict, then the two simple ways
    of spending the same budget, so that on a narrow screen the plan comes first. A plan
    that breaks a limit (``breaches``: plan name -> messages) says so in its heading.
    """
    names = [n for n in ("current", "optimised", "pro rata", "greedy marginal") if n in cards]
    names += [n for n in cards if n not in names]
    target = "optimised" if "optimised" in cards else None
    rows, chart = [], []
    for k in HEADLINE_KPIS:
        row: dict[str, Any] = {"kpi": kpi_label(k)}
        for n in names:
            row[n] = fmt_value(k, cards[n]["kpis"].get(k))
        today = cards["current"]["kpis"].get(k)
        p100 = cards["current"].get("per_100k", {}).get(k)
        row["per_100k_current"] = fmt_value(k, p100) if p100 is not None else ""
        if target:
            new = cards[target]["kpis"].get(k)
            v = verdict(k, new, today, HIGHER_IS_BETTER)
            row["change"] = fmt_change(k, new, today)
            row["verdict"] = {"better": "better", "worse": "worse", "same": "no change"}.get(v, "")
            p100n = cards[target].get("per_100k", {}).get(k)
            row["per_100k_optimised"] = fmt_value(k, p100n) if p100n is not None else ""
            if today not in (None, 0) and new is not None and math.isfinite(float(today)):
                chart.append({"label": kpi_label(k), "pct": (float(new) - float(today)) / abs(float(today)) * 100,
                              "verdict": v})  # fmt: skip
        rows.append(row)

    def heading(n: str) -> str:
        broken = (breaches or {}).get(n) or []
        return PLAN_NAMES.get(n, n) + (f" ({breach_summary(broken)})" if broken else "")

    columns = [{"name": "Measure", "id": "kpi"}, {"name": heading("current"), "id": "current"}]
    if target:
        columns += [{"name": heading(target), "id": target}, {"name": "Change", "id": "change"},
                    {"name": "Verdict", "id": "verdict"}]  # fmt: skip
    columns += [{"name": heading(n), "id": n} for n in names if n not in ("current", target)]
    if target:
        columns += [{"name": "Per 100k today", "id": "per_100k_current"},
                    {"name": "Per 100k optimised", "id": "per_100k_optimised"}]  # fmt: skip
    else:
        columns += [{"name": "Per 100k", "id": "per_100k_current"}]
    return rows, columns, chart


def facts_panel(
    settings: Mapping[str, Any], breaches: Mapping[str, Any], has_plan: bool
) -> html.Div:
    """The settings the plan was made under, and every limit a plan on the page breaks."""
    main = "optimised" if has_plan else "current"
    title = (
        "Settings used for this plan"
        if has_plan
        else "Budget and standards today's capacity is judged against"
    )
    panel = plan_facts(settings, breaches.get(main) or [], title=title, id="results-facts")
    others = [
        message(f"{PLAN_NAMES.get(n, n)} {breach_summary(b)}:", "warning", list(b))
        for n, b in breaches.items() if n != main and b
    ]  # fmt: skip
    return html.Div([panel, *others], className="panel facts-panel")


def quintile_rows(card: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    bq = card.get("by_imd_quintile", {})
    pop = bq.get("population", {})
    rows = []
    for k, per in EQUITY_KPIS:
        if k not in bq:
            continue
        row = {"kpi": kpi_label(k)}
        for q in range(1, 6):
            v = bq[k].get(str(q))
            p = pop.get(str(q))
            if v is None:
                row[f"q{q}"] = "–"
            elif per:
                row[f"q{q}"] = f"{v / p * 1e5:,.1f}" if p else "–"
            else:
                row[f"q{q}"] = fmt_value(k, v)
        rows.append(row)
    cols = [{"name": "Measure", "id": "kpi"}] + [
        {
            "name": f"Q{q}" + (" (most deprived)" if q == 1 else " (least)" if q == 5 else ""),
            "id": f"q{q}",
        }
        for q in range(1, 6)
    ]
    return rows, cols


def change_rows(scenario: Scenario, plan) -> list[dict[str, Any]]:
    """Sites whose capacity the plan changes, per service."""
    if plan is None:
        return []
    rows = []
    for s in scenario.sites:
        cap = plan.capacity(s.site_id)
        for svc in SERVICES:
            now, new = s.capacity.of(svc), cap.of(svc)
            if now != new:
                rows.append({"site_id": s.site_id, "name": s.name, "status": s.status,
                             "service": SERVICE_NAMES[svc], "today": now, "plan": new, "change": new - now,
                             "what": "opens" if now == 0 else "closes" if new == 0 else
                             "grows" if new > now else "shrinks"})  # fmt: skip
    for shift in ("night", "day", "evening"):
        now, new = scenario.hub.of(shift), plan.hub.of(shift)
        if now != new:
            rows.append({"site_id": "crisis line", "name": f"Crisis-line handlers, {shift} shift",
                         "status": "", "service": "Crisis line", "today": now, "plan": new,
                         "change": new - now, "what": "grows" if new > now else "shrinks"})  # fmt: skip
    return sorted(rows, key=lambda r: (-abs(r["change"]), r["site_id"]))


CHANGE_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("Site id", "site_id"), ("Name", "name"), ("Service", "service"), ("Today", "today"), ("Plan", "plan"),
    ("Change", "change"), ("What happens", "what"))]  # fmt: skip


#: What an area without a value means, for each map metric (drawn in its own colour).
MAP_MISSING = {
    "mobile_response_mins": "No mobile team within reach",
    "crisis_house_travel_mins": "Beyond reach of any open crisis house",
    "admissions_per_100k": "No population",
}


def map_values(
    scenario: Scenario, by_area: pd.DataFrame, metric: str
) -> tuple[pd.Series, str, Any]:
    q = scenario.queues
    if metric == "crisis_house_travel_mins":
        return by_area["crisis_house_travel_mins"], "minutes by road", figures.TRAFFIC
    if metric == "admissions_per_100k":
        pop = by_area["population"].replace(0, np.nan)
        return (
            by_area["admissions_per_year"] / pop * 1e5,
            "admissions a year per 100,000",
            figures.BLUES,
        )
    return (
        by_area["mobile_travel_mins"] + q.mobile_dispatch_mins,
        "minutes (dispatch and drive)",
        figures.TRAFFIC,
    )


def plan_map(scenario: Scenario, card, plan, metric: str, tile_url: str | None):
    by_area = card.by_area
    geometry = footprint_geometry(scenario)
    metric = metric if isinstance(metric, str) and metric in MAP_METRICS else "mobile_response_mins"
    values, unit, scale = map_values(scenario, by_area, metric)
    q = scenario.queues
    rows = by_area.reindex(list(geometry.ids))
    vals = values.reindex(list(geometry.ids))
    names = area_table(scenario)["name"]
    fmt = "{:,.1f}" if metric == "admissions_per_100k" else "{:,.0f} min"
    hover = [
        f"<b>{names.get(code, code)}</b> ({code})<br>{MAP_METRICS[metric]}: "
        f"{fmt.format(v) if np.isfinite(v) else MAP_MISSING[metric].lower()}<br>"
        f"mobile standard {q.mobile_standard_rural_mins if r.rural else q.mobile_standard_urban_mins:.0f} min"
        f"{' (rural)' if r.rural else ''}<br>within standard {r.mobile_response_within_standard_share:.0%}<br>"
        f"admissions {r.admissions_per_year:,.1f} a year"
        for (code, r), v in zip(rows.iterrows(), vals.astype(float).fillna(np.nan), strict=True)
    ]
    zmax = None
    if metric != "admissions_per_100k":
        finite = vals[np.isfinite(vals.astype(float))]
        zmax = max(q.mobile_standard_rural_mins, float(finite.max()) if len(finite) else 1.0)
    return figures.area_map(
        geometry, values, hover, colorbar_title=unit, colorscale=scale, zmin=0 if zmax else None, zmax=zmax,
        sites=sites_frame(scenario, plan), with_change=plan is not None, tile_url=tile_url,
        uirevision=scenario.footprint.model_dump_json(), width_px=760, missing_label=MAP_MISSING[metric],
    )  # fmt: skip


def map_key(scenario_data: dict | None, result: dict | None) -> Any:
    """The key to the plan map's marker sizes."""
    scenario = scenario_from_store(scenario_data)
    plan = plan_from_result(result) if result_is_fresh(result, scenario) else None
    return size_key(figures.marker_size_key(sites_frame(scenario, plan)))


@callback(
    Output("results-map-key", "children"),
    Input("app-scenario", "data"),
    Input("app-result", "data"),
)
def on_map_key(scenario_data, result):
    try:
        return map_key(scenario_data, result)
    except Exception:  # noqa: BLE001 - the map itself reports problems
        log.exception("map key failed")
        return None


def build(scenario_data: dict | None, result: dict | None, metric: str | None, equity_kpi: str | None,
          tile_url: str | None) -> tuple:  # fmt: skip
    """Everything on the page: (status, map, change chart, scorecard rows, cols, styles,
    equity chart, quintile rows, cols, change rows, change cols, change note)."""
    if not isinstance(equity_kpi, str) or equity_kpi not in dict(EQUITY_KPIS):
        equity_kpi = None  # a control the browser sent in a shape it never has
    scenario = scenario_from_store(scenario_data)
    cards, shown, plan = session_cards(scenario, result)
    if plan is not None:
        secs = result.get("seconds")
        note = message(f"Showing the optimised plan for '{scenario.name}'"
                       + (f" (found in {secs:.0f} s)." if secs else "."), "success")  # fmt: skip
    elif result:
        note = message("The scenario has changed since the last optimisation, so that plan no longer "
                       "applies. Showing today's capacity: run the optimiser again.", "warning")  # fmt: skip
    else:
        note = message(
            "Showing today's capacity. Run the optimiser to see a suggested plan.", "info"
        )
    settings, breaches = plan_judgement(scenario, result)
    status = html.Div([note, facts_panel(settings, breaches, plan is not None)])
    rows, cols, chart_rows = scorecard_rows(cards, breaches)
    styles = [
        *({"if": {"column_id": n}, "backgroundColor": "#fdf0ef"} for n, b in breaches.items()
          if b and n in cards),
        {"if": {"filter_query": '{verdict} = "better"', "column_id": ["change", "verdict"]}, "color": NHS_GREEN,
         "fontWeight": "bold"},
        {"if": {"filter_query": '{verdict} = "worse"', "column_id": ["change", "verdict"]}, "color": NHS_RED,
         "fontWeight": "bold"},
    ]  # fmt: skip
    main = cards.get("optimised", cards["current"])
    q_rows, q_cols = quintile_rows(main)
    shown_plans = [n for n in ("current", "optimised") if n in cards]
    equity = figures.equity_chart(
        {PLAN_NAMES[n]: cards[n].get("by_imd_quintile", {}) for n in shown_plans},
        equity_kpi or "admissions_per_year", dict(EQUITY_KPIS).get(equity_kpi or "admissions_per_year", False),
        roles={PLAN_NAMES[n]: n for n in shown_plans},
    )  # fmt: skip
    fig = plan_map(scenario, shown, plan, metric or "mobile_response_mins", tile_url)
    changes = change_rows(scenario, plan)
    if plan is None:
        note = empty_state("No plan yet: run the optimiser to see which sites change.")
    elif not changes:
        note = empty_state("The plan keeps today's capacity at every site.")
    else:
        note = html.P(
            f"{len(changes)} change(s). Green: more capacity; red: less.", className="hint"
        )
    return (status, fig, figures.scorecard_chart(chart_rows), rows, cols, styles, equity, q_rows, q_cols,
            changes, CHANGE_COLUMNS, note)  # fmt: skip


@callback(
    Output("results-status", "children"),
    Output("results-map", "figure"),
    Output("results-change-chart", "figure"),
    Output("results-scorecard", "data"),
    Output("results-scorecard", "columns"),
    Output("results-scorecard", "style_data_conditional"),
    Output("results-equity-chart", "figure"),
    Output("results-quintiles", "data"),
    Output("results-quintiles", "columns"),
    Output("results-changes", "data"),
    Output("results-changes", "columns"),
    Output("results-changes-note", "children"),
    Input("app-scenario", "data"),
    Input("app-result", "data"),
    Input("results-map-metric", "value"),
    Input("results-equity-kpi", "value"),
)
def on_render(scenario_data, result, metric, equity_kpi):
    try:
        tile_url = current_config().tile_url
        return figures.DRAWN.get(("results", scenario_data, result, metric, equity_kpi, tile_url),
                                 lambda: build(scenario_data, result, metric, equity_kpi, tile_url))  # fmt: skip
    except Exception as err:  # noqa: BLE001
        log.exception("results failed")
        empty = figures.empty_figure("Nothing to show.")
        return error_message(err), empty, empty, [], [], [], empty, [], [], [], [], None


# --------------------------------------------------------------------------- frontier


def frontier_budgets(base_cost: float, max_pct: float, steps: int = FRONTIER_STEPS) -> list[float]:
    top = max(float(max_pct or 0), 1.0) / 100.0
    return [base_cost * (1 + top * i / steps) for i in range(steps + 1)]


#: What happened at one budget of the frontier: status -> (words, how bad: 0 best .. 3 worst).
FRONTIER_OUTCOMES: dict[str, tuple[str, int]] = {
    "OPTIMAL": ("best plan, proven", 0),
    "TIME_LIMIT": ("best plan found before the time limit", 1),
    "FEASIBLE": ("best plan found before the time limit", 1),
    "HEURISTIC": ("first plan meeting every limit (the solver found nothing better in time)", 2),
    "INFEASIBLE": ("no plan meets the standards at this budget", 2),
    "NO_PLAN_IN_TIME": ("no plan found in the time allowed", 2),
}
WORSE_THAN_TODAY = "worse than today's capacity on the optimiser's measure"


def frontier_point(row: Mapping[str, Any], today_objective: float | None) -> dict[str, Any]:
    """One budget's outcome in words: ``what`` happened, how ``bad`` (0-2), and ``note``s."""
    status = str(row.get("status") or "")
    words, bad = FRONTIER_OUTCOMES.get(status, (status.lower().replace("_", " ") or "unknown", 2))
    notes = []
    gap = row.get("gap")
    if status in ("TIME_LIMIT", "FEASIBLE") and gap is not None and math.isfinite(float(gap)):
        words += f" (within {float(gap):.1%} of the best possible)"
    objective = row.get("objective")
    if (today_objective is not None and objective is not None
            and float(objective) > today_objective * (1 + 1e-6) + 1e-9):  # fmt: skip
        notes.append(WORSE_THAN_TODAY)
        bad = max(bad, 2)
    if row.get("binding") is False:
        notes.append("the best plan leaves part of this budget unspent")
    if row.get("message") and status in ("INFEASIBLE", "NO_PLAN_IN_TIME"):
        notes.append(str(row["message"]))
    return {"what": words, "bad": bad, "notes": notes}


def frontier_summary(
    rows: list[Mapping[str, Any]], today_objective: float | None
) -> dict[str, Any]:
    """The frontier's outcome as a message coloured by its worst budget."""
    points = [frontier_point(r, today_objective) for r in rows]
    n = len(rows)
    counts: dict[str, int] = {}
    for p in points:
        counts[p["what"].split(" (")[0]] = counts.get(p["what"].split(" (")[0], 0) + 1
    worse = sum(WORSE_THAN_TODAY in p["notes"] for p in points)
    planned = sum(r.get("oap_bed_days_per_year") is not None for r in rows)
    parts = [f"{k}: {v}" for k, v in counts.items()]
    if worse:
        parts.append(f"{WORSE_THAN_TODAY}: {worse}")
    worst = max((p["bad"] for p in points), default=3)
    if planned == 0:
        kind, head = "error", f"No budget of the {n} gave a plan."
    elif worst == 0:
        kind, head = "success", f"Frontier computed at {n} budgets: every plan proven best."
    else:
        kind, head = (
            "warning",
            f"Frontier computed at {n} budgets ({planned} with a plan); not every point is proven best.",
        )
    return message_data(head, kind, parts)


def compute_frontier(scenario_data: dict | None, max_pct: Any, seconds: Any,
                     progress=lambda pct, text: None) -> tuple:  # fmt: skip
    """Optimise at budgets from today's cost up: returns (frontier store, status).

    Raises ``FieldError`` for a range or time that is out of bounds.
    """
    from pathways.optimise import SolverOptions, objective_value
    from pathways.optimise.run import frontier

    top = FRONTIER_MAX.read(max_pct)
    secs = FRONTIER_SECONDS.read(seconds)
    scenario = scenario_from_store(scenario_data)
    today = evaluate(scenario)
    base = today.kpis["total_cost_gbp_per_year"]
    budgets = frontier_budgets(base, 15 if top is None else top)
    limit = float(FRONTIER_TIME_LIMIT_S if secs is None else secs)

    def report(msg: str, frac: float) -> None:
        progress(100 * float(frac), msg.replace("GBP ", "£"))

    df = frontier(scenario, budgets, SolverOptions(time_limit_s=limit, progress=report))
    today_objective = float(objective_value(today, "min_weighted", scenario.objective.weights))
    rows = df.replace({np.nan: None}).to_dict("records")
    store = {"scenario_fingerprint": scenario.fingerprint(), "base_cost": base,
             "today_objective": today_objective, "rows": rows}  # fmt: skip
    return store, frontier_summary(rows, today_objective)


# Like the optimiser (pages/optimise.py), the frontier job reads and writes shell stores
# (``app-frontier-*``) and reports to the job board, so it finishes even if the user leaves
# this page, and a reloaded page finds it again.


def request_frontier(max_pct: Any, seconds: Any, scenario_data: dict | None) -> tuple:
    """(request, session job, status): nothing starts while a field is out of bounds."""
    errors = []
    for bound, raw in ((FRONTIER_MAX, max_pct), (FRONTIER_SECONDS, seconds)):
        try:
            bound.read(raw)
        except FieldError as err:
            errors.append(str(err))
    if errors:
        return (
            no_update,
            no_update,
            message_data("Fix these, then compute the frontier.", "error", errors),
        )
    request = {"job_id": new_job_id(), "max_pct": max_pct, "seconds": seconds,
               "scenario": scenario_data, "requested_at": time.time()}  # fmt: skip
    with job_board() as board:
        board.start(request["job_id"], FRONTIER_JOB, None)
    return (
        request,
        {"id": request["job_id"], "kind": FRONTIER_JOB, "started": request["requested_at"]},
        None,
    )


@callback(
    Output("app-frontier-request", "data"),
    Output("app-frontier-job", "data", allow_duplicate=True),
    Output("app-frontier-status", "data", allow_duplicate=True),
    Output("app-options", "data", allow_duplicate=True),
    Input("results-frontier-run", "n_clicks"),
    State("results-frontier-max", "value"),
    State("results-frontier-time", "value"),
    State("app-scenario", "data"),
    State("app-options", "data"),
    prevent_initial_call=True,
)
def on_frontier_request(n_clicks, max_pct, seconds, scenario_data, options):
    if not n_clicks:
        return no_update, no_update, no_update, no_update
    request, job, status = request_frontier(max_pct, seconds, scenario_data)
    kept = {**(options or {}), "frontier_max_pct": max_pct, "frontier_seconds": seconds}
    return request, job, status, (kept if request is not no_update else no_update)


@callback(
    Output("results-frontier-max", "value"),
    Output("results-frontier-time", "value"),
    Input("results-frontier-init", "data"),
    State("app-options", "data"),
)
def on_frontier_init(_init, options):
    options = options or {}
    return (str(options.get("frontier_max_pct") or FRONTIER_DEFAULT_PCT),
            str(options.get("frontier_seconds") or FRONTIER_TIME_LIMIT_S))  # fmt: skip


@callback(
    Output("app-frontier-cancel", "data"),
    Output("app-frontier-job", "data", allow_duplicate=True),
    Output("app-frontier-watch", "data", allow_duplicate=True),
    Output("app-frontier-status", "data", allow_duplicate=True),
    Input("results-frontier-cancel", "n_clicks"),
    State("app-frontier-job", "data"),
    prevent_initial_call=True,
)
def on_frontier_cancel(n_clicks, job):
    if not n_clicks:
        return no_update, no_update, no_update, no_update
    with job_board() as board:
        board.cancel((job or {}).get("id"))
    return (
        time.time(),
        None,
        None,
        message_data("Frontier cancelled: no result was produced.", "info"),
    )


@callback(
    Output("app-frontier-status", "data"),
    Output("app-frontier", "data", allow_duplicate=True),
    Output("app-frontier-job", "data", allow_duplicate=True),
    Input("app-frontier-request", "data"),
    background=True,
    running=[(Output("app-frontier-running", "data"), True, False)],
    progress=[Output("app-frontier-progress", "data")],
    progress_default=[None],
    cancel=[Input("app-frontier-cancel", "data")],
    prevent_initial_call=True,
)
def on_frontier(set_progress, request):
    from dashapp.pages.optimise import run_job

    def work(progress):
        try:
            store, status = compute_frontier(
                request.get("scenario"), request.get("max_pct"), request.get("seconds"), progress
            )
            return status, store
        except Exception as err:  # noqa: BLE001
            if not isinstance(err, FieldError | InputError):
                log.exception("frontier failed")
            return error_data(err), None

    return run_job(set_progress, request, FRONTIER_JOB, work)


# Two views of the job: the controls follow its running/progress side outputs at once;
# the message waits for the job's result (Dash holds callbacks on a running job's outputs).


@callback(
    Output("results-frontier-run", "disabled"),
    Output("results-frontier-cancel", "disabled"),
    Output("results-frontier-progress", "value"),
    Output("results-frontier-label", "children"),
    Output("results-frontier-wrap", "className"),
    Input("app-frontier-running", "data"),
    Input("app-frontier-progress", "data"),
    Input("app-frontier-watch", "data"),
)
def on_frontier_job_view(running, progress, watch):
    return job_view(running, progress, watch)


@callback(Output("results-frontier-status", "children"), Input("app-frontier-status", "data"))
def on_frontier_job_status(status):
    return render_message(status)


def _frontier_of(scenario_data: dict | None, frontier_data: dict | None) -> dict | None:
    scenario = scenario_from_store(scenario_data)
    if not frontier_data or frontier_data.get("scenario_fingerprint") != scenario.fingerprint():
        return None
    return frontier_data


def frontier_view(scenario_data: dict | None, frontier_data: dict | None, result: dict | None):
    scenario = scenario_from_store(scenario_data)
    data = _frontier_of(scenario_data, frontier_data)
    if data is None:
        return figures.frontier_chart(None)
    today = data.get("today_objective")
    rows = [{**r, "outcome": frontier_point(r, today)} for r in data.get("rows", [])]
    df = pd.DataFrame(rows)
    if len(df):
        df["what"] = [r["outcome"]["what"] for r in rows]
        df["worse_than_today"] = [WORSE_THAN_TODAY in r["outcome"]["notes"] for r in rows]
    budget = result.get("budget_gbp") if result_is_fresh(result, scenario) else None
    return figures.frontier_chart(df, budget)


FRONTIER_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("Budget", "budget"), ("What happened", "what"), ("Out-of-area bed-days a year", "oap"),
    ("Admissions a year", "admissions"), ("Plan costs", "cost"), ("Notes", "notes"))]  # fmt: skip


def frontier_table(scenario_data: dict | None, frontier_data: dict | None) -> list[dict[str, Any]]:
    """One row per budget of the frontier: what happened there, in words."""
    data = _frontier_of(scenario_data, frontier_data)
    if data is None:
        return []
    out = []
    for r in data.get("rows", []):
        point = frontier_point(r, data.get("today_objective"))
        out.append({
            "budget": f"{fmt_money(r.get('budget_gbp_per_year'))} a year", "what": point["what"],
            "oap": fmt_value("oap_bed_days_per_year", r.get("oap_bed_days_per_year")),
            "admissions": fmt_value("admissions_per_year", r.get("admissions_per_year")),
            "cost": fmt_money(r.get("total_cost_gbp_per_year")), "notes": "; ".join(point["notes"]),
            "bad": point["bad"],
        })  # fmt: skip
    return out


@callback(
    Output("results-frontier-chart", "figure"),
    Output("results-frontier-table", "data"),
    Input("app-frontier", "data"),
    State("app-scenario", "data"),
    State("app-result", "data"),
)
def on_frontier_view(frontier_data, scenario_data, result):
    try:
        return frontier_view(scenario_data, frontier_data, result), frontier_table(
            scenario_data, frontier_data
        )
    except Exception:  # noqa: BLE001
        log.exception("frontier chart failed")
        return figures.empty_figure("The frontier could not be drawn."), []


# --------------------------------------------------------------------------- simulation
# The same job pattern as the frontier: shell stores ``app-simulate-*``, the job board,
# results kept in ``app-simulation`` (and on disk per plan, see dashapp/simulation.py).


def request_simulation(reps: Any, scenario_data: dict | None, result: dict | None) -> tuple:
    """(request, session job, status): nothing starts while the field is out of bounds."""
    try:
        sim.SIM_REPS.read(reps)
    except FieldError as err:
        return no_update, no_update, message_data("Fix this, then simulate.", "error", [str(err)])
    request = {"job_id": new_job_id(), "reps": reps, "scenario": scenario_data, "result": result,
               "requested_at": time.time()}  # fmt: skip
    with job_board() as board:
        board.start(request["job_id"], SIMULATE_JOB, None)
    return (
        request,
        {"id": request["job_id"], "kind": SIMULATE_JOB, "started": request["requested_at"]},
        None,
    )


@callback(
    Output("app-simulate-request", "data"),
    Output("app-simulate-job", "data", allow_duplicate=True),
    Output("app-simulate-status", "data", allow_duplicate=True),
    Output("app-options", "data", allow_duplicate=True),
    Input("results-sim-run", "n_clicks"),
    State("results-sim-reps", "value"),
    State("app-scenario", "data"),
    State("app-result", "data"),
    State("app-options", "data"),
    prevent_initial_call=True,
)
def on_sim_request(n_clicks, reps, scenario_data, result, options):
    if not n_clicks:
        return no_update, no_update, no_update, no_update
    request, job, status = request_simulation(reps, scenario_data, result)
    kept = {**(options or {}), "sim_reps": reps}
    return request, job, status, (kept if request is not no_update else no_update)


@callback(Output("results-sim-reps", "value"), Input("results-sim-init", "data"),
          State("app-options", "data"))  # fmt: skip
def on_sim_init(_init, options):
    return str((options or {}).get("sim_reps") or sim.SIM_DEFAULT_REPS)


@callback(
    Output("app-simulate-cancel", "data"),
    Output("app-simulate-job", "data", allow_duplicate=True),
    Output("app-simulate-watch", "data", allow_duplicate=True),
    Output("app-simulate-status", "data", allow_duplicate=True),
    Input("results-sim-cancel", "n_clicks"),
    State("app-simulate-job", "data"),
    prevent_initial_call=True,
)
def on_sim_cancel(n_clicks, job):
    if not n_clicks:
        return no_update, no_update, no_update, no_update
    with job_board() as board:
        board.cancel((job or {}).get("id"))
    return time.time(), None, None, message_data("Simulation cancelled: no result was produced.",
                                                 "info")  # fmt: skip


@callback(
    Output("app-simulate-status", "data"),
    Output("app-simulation", "data", allow_duplicate=True),
    Output("app-simulate-job", "data", allow_duplicate=True),
    Input("app-simulate-request", "data"),
    background=True,
    running=[(Output("app-simulate-running", "data"), True, False)],
    progress=[Output("app-simulate-progress", "data")],
    progress_default=[None],
    cancel=[Input("app-simulate-cancel", "data")],
    prevent_initial_call=True,
)
def on_simulate(set_progress, request):
    from dashapp.pages.optimise import run_job

    def work(progress):
        try:
            store, status = sim.run_simulation(
                request.get("scenario"), request.get("result"), request.get("reps"), progress
            )
            return status, store
        except Exception as err:  # noqa: BLE001
            if not isinstance(err, FieldError | InputError):
                log.exception("simulation failed")
            return error_data(err), None

    return run_job(set_progress, request, SIMULATE_JOB, work)


@callback(
    Output("results-sim-run", "disabled"),
    Output("results-sim-cancel", "disabled"),
    Output("results-sim-progress", "value"),
    Output("results-sim-label", "children"),
    Output("results-sim-wrap", "className"),
    Input("app-simulate-running", "data"),
    Input("app-simulate-progress", "data"),
    Input("app-simulate-watch", "data"),
)
def on_sim_job_view(running, progress, watch):
    return job_view(running, progress, watch)


@callback(Output("results-sim-status", "children"), Input("app-simulate-status", "data"))
def on_sim_job_status(status):
    return render_message(status)


def simulation_view(scenario_data: dict | None, result: dict | None, store: dict | None) -> tuple:
    """(note, table rows, chart) for the stored simulation, if it fits this scenario and plan."""
    data = sim.sim_for(scenario_data, result, store)
    if data is None:
        note = empty_state("Not simulated yet for this scenario and plan: press Simulate." if not store
                           else "The scenario or plan has changed since the last simulation: "
                                "simulate again.")  # fmt: skip
        return note, [], figures.oap_days_chart(None)
    runs = data.get("runs", {})
    n = len((runs.get("today") or {}).get("daily", {}).get("mean", []))
    note = html.P(
        f"{data.get('reps')} simulated years (seed {data.get('seed')}). 'Model' is the scorecard's "
        "expected value; the interval is where the mean of many such years would lie, 19 times in "
        "20. Figures are modelled, not counts of people.",
        className="hint",
    )
    return note, sim.band_rows(data), figures.oap_days_chart(runs, sim.day_dates(n), data.get("reps"))


@callback(
    Output("results-sim-note", "children"),
    Output("results-sim-table", "data"),
    Output("results-sim-chart", "figure"),
    Input("app-simulation", "data"),
    Input("app-scenario", "data"),
    Input("app-result", "data"),
)
def on_sim_view(store, scenario_data, result):
    try:
        return simulation_view(scenario_data, result, store)
    except Exception:  # noqa: BLE001
        log.exception("simulation view failed")
        return message("The simulation could not be shown.", "error"), [], figures.empty_figure(
            "The simulation could not be drawn."
        )
